"""Helpers of the ``test_sources_*`` modules: config writers, error assertions, a network
block, and the shared-data switch of the shipped configs."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline_tests.support.paths import KAGGLE_STOCKS, shared_data_dir


def require_shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Skip the test when shared/data is absent; else point the shipped configs at it."""
    found = shared_data_dir(KAGGLE_STOCKS)
    if found is None:
        pytest.skip(
            "shared/data not found (set BETA_PIPELINE_DATA_DIR or put shared/data beside the "
            "repository): the shared-data reader tests need the real files"
        )
    monkeypatch.setenv("BETA_PIPELINE_DATA_DIR", str(found))
    monkeypatch.delenv("BETA_PIPELINE_CSV_CONFIG", raising=False)
    return found


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def config_for(tmp_path: Path, body: str, name: str = "cfg.yaml") -> Path:
    return write(tmp_path / name, body)


def assert_error(err: DataValidationError, rule: str, file: Path | str, row: int | None) -> None:
    """The error has the rule, and its message names the file and (when given) the row."""
    assert err.rule == rule, f"expected rule {rule!r}, got {err.rule!r}: {err}"
    msg = str(err)
    assert str(file) in msg, f"file {file} not named in: {msg}"
    if row is not None:
        assert err.row == row, f"expected row {row}, got {err.row}: {msg}"
        assert f"row={row}" in msg, msg


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any socket connection fail loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
