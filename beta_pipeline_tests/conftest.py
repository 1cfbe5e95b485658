"""Shared fixtures: one temporary BETA_PIPELINE_HOME (and DuckDB file) per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repo (or ``$BETA_PIPELINE_DATA_DIR``), if present."""
    env = os.environ.get("BETA_PIPELINE_DATA_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is not beside the repo (set BETA_PIPELINE_DATA_DIR)")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BETA_PIPELINE_HOME and DAGSTER_HOME for the test."""
    root = tmp_path / "bp_home"
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    monkeypatch.delenv("BETA_PIPELINE_SOURCE", raising=False)
    monkeypatch.delenv("BETA_PIPELINE_CSV_CONFIG", raising=False)
    from beta_pipeline.settings import ensure_home

    ensure_home()
    return root


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    """Path of a fresh, per-test DuckDB file."""
    return tmp_path / "warehouse.duckdb"
