"""Per-test fixtures, made available to every test module by ``beta_pipeline_tests/conftest.py``:
one temporary BETA_PIPELINE_HOME (and DuckDB file) per test, and the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from beta_pipeline_tests.support.paths import shared_data_dir


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder (:func:`~.paths.shared_data_dir`); skips the test without it."""
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
