"""The executor of the NeuralBeta walk-forward training job, chosen by the environment.

``BETA_PIPELINE_EXECUTOR``:

- unset or ``default``: ``None``, i.e. Dagster's default executor of the code location
  (``multi_or_in_process_executor``: each step in its own process on this machine);
- ``in_process``: every step of a run in the run's own process;
- ``multiprocess``: every step in a child process of the run, at most
  ``BETA_PIPELINE_MAX_CONCURRENT`` (default: Dagster's, the CPU count) at a time;
- ``celery``: every step is a Celery task executed by ``dagster-celery`` workers, possibly on
  other machines (``docs/distributed.md``). The broker is ``BETA_PIPELINE_CELERY_BROKER``
  (default ``redis://127.0.0.1:6379/0``), the result backend ``BETA_PIPELINE_CELERY_BACKEND``
  (default: the broker). A URL set in the environment is referred to as ``{env: VAR}`` in
  the executor's config, so a password in it is never shown in the UI or written into a
  run's config; every process that orchestrates a run needs the variable.

Only the ``celery`` choice imports ``dagster_celery`` (and Celery): importing the
definitions stays cheap otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

EXECUTOR_ENV = "BETA_PIPELINE_EXECUTOR"
BROKER_ENV = "BETA_PIPELINE_CELERY_BROKER"
BACKEND_ENV = "BETA_PIPELINE_CELERY_BACKEND"
MAX_CONCURRENT_ENV = "BETA_PIPELINE_MAX_CONCURRENT"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
EXECUTORS = ("default", "in_process", "multiprocess", "celery")
#: Modules every Celery worker imports before its first task (so a forked task process does
#: not import the code location again).
WORKER_INCLUDES = ("beta_pipeline.definitions",)


def executor_kind(env: Mapping[str, str] | None = None) -> str:
    """The executor chosen by ``BETA_PIPELINE_EXECUTOR`` (``default`` when unset)."""
    env = os.environ if env is None else env
    kind = env.get(EXECUTOR_ENV, "").strip().lower().replace("-", "_") or "default"
    if kind not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected one of {', '.join(EXECUTORS)}")
    return kind


def _url(env: Mapping[str, str], var: str, fallback: Any) -> Any:
    return {"env": var} if env.get(var, "").strip() else fallback


def celery_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config of ``dagster_celery.celery_executor`` from the environment: broker and
    backend (as ``{env: VAR}`` when the variable is set, else the default URL). The same
    mapping under ``execution: config:`` is the ``--config-yaml`` of ``dagster-celery
    worker start``, so workers and runs agree on the broker."""
    env = os.environ if env is None else env
    broker = _url(env, BROKER_ENV, DEFAULT_BROKER)
    return {"broker": broker, "backend": _url(env, BACKEND_ENV, broker)}


def resolved_celery_urls(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(broker, backend) URLs as a process with ``env`` uses them."""
    env = os.environ if env is None else env
    broker = env.get(BROKER_ENV, "").strip() or DEFAULT_BROKER
    return broker, env.get(BACKEND_ENV, "").strip() or broker


def training_executor(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor of the walk-forward training job (see the module docstring); ``None``
    leaves the job on the code location's default executor."""
    env = os.environ if env is None else env
    kind = executor_kind(env)
    if kind == "default":
        return None
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        limit = env.get(MAX_CONCURRENT_ENV, "").strip()
        if not limit:
            return dg.multiprocess_executor
        if not limit.isdigit() or int(limit) < 1:
            raise ValueError(f"{MAX_CONCURRENT_ENV}={limit!r}: expected a positive integer")
        return dg.multiprocess_executor.configured({"max_concurrent": int(limit)})
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(env))
