"""Run bundles: what a NeuralBeta training leaves for the warehouse (no Dagster import).

A bundle is a folder under an fsspec URL (a local folder, ``file://``, or an object store
shared by every training worker): ``run.json`` (the run's ``neuralbeta.runs`` row, written
last, so a bundle without it is incomplete and ignored), ``history.parquet`` (its
``neuralbeta.history`` rows) and ``best.ckpt``. Layout: ``<root>/<study key>/<spec>/<run_id>``
with the study key ``table1`` or a walk-forward cut-off year. Training never writes the
DuckDB file; one writer step loads bundles (:func:`read_bundles`).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from beta_pipeline.lib.neuralbeta.tables import HISTORY, RUNS

#: Files of a run bundle.
RUN_FILE, HISTORY_FILE, CHECKPOINT_FILE = "run.json", "history.parquet", "best.ckpt"
#: Study key of the Table 1 runs (walk-forward runs use their cut-off year).
TABLE1 = "table1"


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


def _local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in np.atleast_1d(fs.protocol)


def local_folder(url: str) -> Path | None:
    """``url`` as a local folder (None for a remote filesystem)."""
    fs, path = _fs(url)
    return Path(path) if _local(fs) else None


def bundle_url(root_url: str, study_key: str | int, spec: str, run_id: str) -> str:
    """Where a run's bundle goes: ``<root>/<study key>/<spec>/<run_id>`` (study key:
    ``table1`` or the walk-forward cut-off year)."""
    return posixpath.join(root_url.rstrip("/"), str(study_key), spec, run_id)


def write_bundle(url: str, run: pd.DataFrame, history: pd.DataFrame, checkpoint: str | Path) -> str:
    """Copy the checkpoint to ``url``, point the run's ``checkpoint`` at it and write the
    run row and history; ``run.json`` is written last (a bundle without it is incomplete
    and ignored). Returns the checkpoint's URL (a plain path on a local filesystem)."""
    fs, path = _fs(url)
    fs.makedirs(path, exist_ok=True)
    ckpt = posixpath.join(path, CHECKPOINT_FILE)
    if not (_local(fs) and Path(checkpoint).resolve() == Path(ckpt).resolve()):
        fs.put_file(str(checkpoint), ckpt)
    ckpt_ref = ckpt if _local(fs) else fs.unstrip_protocol(ckpt)
    with fs.open(posixpath.join(path, HISTORY_FILE), "wb") as out:
        history.to_parquet(out, index=False)
    row = run.iloc[0].to_dict() | {"checkpoint": ckpt_ref}
    text = json.dumps(row, default=_jsonable, indent=1)
    tmp = posixpath.join(path, RUN_FILE + ".tmp")
    with fs.open(tmp, "w") as out:
        out.write(text)
    fs.mv(tmp, posixpath.join(path, RUN_FILE))
    return ckpt_ref


def _jsonable(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def run_id_of(url: str) -> str:
    """The run id of a bundle (its folder's name, see :func:`bundle_url`)."""
    return posixpath.basename(url.rstrip("/"))


def list_bundles(root_url: str) -> list[str]:
    """URLs (paths on a local filesystem) of the complete bundles under ``root_url``."""
    fs, root = _fs(root_url)
    if not fs.exists(root):
        return []
    found = fs.glob(posixpath.join(root, "*", "*", "*", RUN_FILE))
    out = [posixpath.dirname(p) for p in sorted(found)]
    return out if _local(fs) else [fs.unstrip_protocol(p) for p in out]


def read_bundles(urls: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, history)`` rows of the bundles (columns of ``neuralbeta.runs``/``history``);
    a run's ``checkpoint`` is its bundle's."""
    runs, histories = [], []
    for url in urls:
        fs, path = _fs(url)
        with fs.open(posixpath.join(path, RUN_FILE)) as src:
            row = json.load(src)
        # the checkpoint is where the bundle is now (a moved store keeps working)
        ckpt = posixpath.join(path, CHECKPOINT_FILE)
        runs.append(row | {"checkpoint": ckpt if _local(fs) else fs.unstrip_protocol(ckpt)})
        with fs.open(posixpath.join(path, HISTORY_FILE), "rb") as src:
            histories.append(pd.read_parquet(src).assign(run_id=row["run_id"]))
    run_frame = pd.DataFrame(runs, columns=RUNS.column_names)
    for col in ("train_end", "val_end", "trained_through", "created_at"):
        run_frame[col] = pd.to_datetime(run_frame[col])
    history = (
        pd.concat(histories, ignore_index=True)
        if histories
        else pd.DataFrame(columns=HISTORY.column_names)
    )
    return run_frame, history
