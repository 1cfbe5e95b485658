"""Great Expectations 1.x plumbing: one cached ephemeral context, suites run on pandas frames.

Building a context is slow (importing GE alone takes seconds), so one context, one pandas
data source, one dataframe asset and one whole-dataframe batch definition are built once per
process (``gx_context``) and reused for every validation. Progress bars and analytics are off
(``GX_ANALYTICS_ENABLED=False`` and ``analytics_enabled=False`` in the project config).
GE contexts are not thread-safe, so validations run under a lock.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from beta_pipeline.lib.quality.outcome import (
    MAX_ROWS_KEPT,
    CheckOutcome,
    Severity,
    empty_rows,
    make_rows,
)

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

DATASOURCE_NAME = "beta_pipeline_quality"
ASSET_NAME = "frame"
BATCH_DEFINITION_NAME = "whole_frame"

_LOCK = threading.Lock()
_META_KEY = "beta_pipeline_rule"


@dataclass(frozen=True)
class GxHandle:
    context: AbstractDataContext
    batch_definition: BatchDefinition


@functools.cache
def gx_context() -> GxHandle:
    """The process-wide ephemeral GE context and its whole-dataframe batch definition."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    datasource = context.data_sources.add_pandas(name=DATASOURCE_NAME)
    asset = datasource.add_dataframe_asset(name=ASSET_NAME)
    batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)
    return GxHandle(context=context, batch_definition=batch_definition)


def expectations() -> Any:
    """The ``great_expectations.expectations`` module (imported lazily)."""
    import great_expectations.expectations as gxe

    return gxe


@dataclass
class GxRule:
    """One GE expectation feeding a named check.

    ``value_column`` names the frame column copied into ``rows.value`` for unexpected rows
    (None for key checks); ``reason`` is the sentence stored in ``rows.reason``.
    """

    check_name: str
    expectation: Any
    reason: str
    value_column: str | None = None


def run_rules(
    frame: pd.DataFrame, rules: Sequence[GxRule], max_rows: int = MAX_ROWS_KEPT
) -> list[tuple[GxRule, Any]]:
    """Validate ``frame`` against all ``rules`` in one suite; (rule, result) in rule order.

    ``frame`` must have a unique 0..n-1 RangeIndex: GE reports unexpected rows by index
    label and the caller maps them back by position.
    """
    import great_expectations as gx

    handle = gx_context()
    # GE returns suite results grouped by metric, not in suite order, and expectations have
    # no id outside a stored suite: tag each copy with its position in ``meta``.
    tagged = [
        r.expectation.copy(update={"meta": {**(r.expectation.meta or {}), _META_KEY: i}})
        for i, r in enumerate(rules)
    ]
    suite = gx.ExpectationSuite(name="beta_pipeline_quality_suite", expectations=tagged)
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": int(max_rows)}
    with _LOCK:
        batch = handle.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        validation = batch.validate(suite, result_format=result_format)
    by_position = {
        (res.expectation_config.meta or {}).get(_META_KEY): res for res in validation.results
    }
    ordered = [(rule, by_position.get(i)) for i, rule in enumerate(rules)]
    return ordered


def _raised(exception_info: Any) -> str | None:
    """The first exception message in a GE ``exception_info`` (flat or keyed by metric)."""
    if not exception_info:
        return None
    if isinstance(exception_info, dict):
        if exception_info.get("raised_exception"):
            return str(exception_info.get("exception_message") or "exception")
        for value in exception_info.values():
            if isinstance(value, dict):
                msg = _raised(value)
                if msg:
                    return msg
    return None


def gx_outcome(
    check_name: str,
    frame: pd.DataFrame,
    results: Sequence[tuple[GxRule, Any]],
    severity: Severity,
    ok_text: str,
    fail_text: str,
    max_rows: int = MAX_ROWS_KEPT,
) -> CheckOutcome:
    """Fold the GE results of one check into a CheckOutcome.

    The GE ``success`` flags decide ``passed``; ``unexpected_count`` sums into ``observed``
    and ``n_rows``; ``partial_unexpected_index_list`` picks the offending rows of ``frame``.
    ``fail_text`` may use ``{n}`` (offending rows).
    """
    mine = [(rule, res) for rule, res in results if rule.check_name == check_name]
    if not mine:
        raise ValueError(f"no GE rule feeds check {check_name!r}")
    passed = True
    total = 0
    errors: list[str] = []
    parts: list[pd.DataFrame] = []
    for rule, res in mine:
        if res is None:
            passed = False
            errors.append(f"{rule.expectation.expectation_type}: no result")
            continue
        message = _raised(res.exception_info)
        if message:
            passed = False
            errors.append(f"{rule.expectation.expectation_type}: {message}")
            continue
        passed = passed and bool(res.success)
        result = res.result or {}
        total += int(result.get("unexpected_count") or 0)
        index = list(result.get("partial_unexpected_index_list") or [])
        if index:
            sub = frame.iloc[index]
            value = sub[rule.value_column] if rule.value_column else float("nan")
            parts.append(
                pd.DataFrame(
                    {
                        "symbol": sub["symbol"].to_numpy(),
                        "date": sub["date"].to_numpy(),
                        "value": pd.to_numeric(pd.Series(value, index=sub.index), errors="coerce")
                        .astype("float64")
                        .to_numpy(),
                        "reason": rule.reason,
                    }
                )
            )
    rows = make_rows(pd.concat(parts, ignore_index=True), max_rows) if parts else empty_rows()
    if errors:
        details = f"{check_name}: validation could not run ({'; '.join(errors)})"
    elif passed:
        details = ok_text
    else:
        details = fail_text.format(n=total)
    return CheckOutcome(
        check_name=check_name,
        passed=passed,
        severity=severity,
        observed=total,
        details=details,
        rows=rows,
        n_rows=total,
    )
