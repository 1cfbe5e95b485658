"""Paths of the repository and of the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The Kaggle S&P 500 file: the shared-data readers and the calendar tests need it.
KAGGLE_STOCKS = "all_stocks_5yr.csv.gz"


def shared_data_dir(*required: str) -> Path | None:
    """The shared data folder, resolved, or None when there is none.

    Candidates in order: ``$BETA_PIPELINE_DATA_DIR`` (when set) and ``shared/data`` beside
    the repository (also tried when the variable's folder does not qualify). A candidate
    qualifies when it is a folder holding every file named in ``required`` (any folder
    when none is named).
    """
    env = os.environ.get("BETA_PIPELINE_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for folder in candidates:
        if folder.is_dir() and all((folder / name).is_file() for name in required):
            return folder.resolve()
    return None
