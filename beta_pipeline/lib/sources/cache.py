"""Caches of parsed files.

In process (:func:`cached_file`), keyed by (resolved path, mtime, size, parse spec): a
multi-asset run builds several sources (or calls one several times); each file is read and
validated once per process and per parse spec. A file changed on disk (new mtime or size)
is read again. Only successfully parsed results are stored, so a failing file raises again
on the next call.

On disk (:func:`disk_cached`), keyed by the file's content hash, the parse spec and the
parsing code: a validated file is kept as Parquet under ``$BETA_PIPELINE_HOME/cache``, so a
scheduled day does not parse a multi-year CSV again (issue 12).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_LOCK = threading.RLock()
_CACHE: dict[tuple[Any, ...], Any] = {}
#: number of times each resolved path was actually parsed (for tests and describe()).
READS: Counter[str] = Counter()


def file_key(path: Path) -> tuple[str, int, int]:
    resolved = path.resolve()
    st = resolved.stat()
    return (str(resolved), st.st_mtime_ns, st.st_size)


def cached_file(path: Path, spec: Any, loader: Callable[[], T]) -> T:
    """Return ``loader()``'s result for ``path`` parsed with ``spec``, computing it once."""
    key = (*file_key(path), repr(spec))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        hits = DISK_HITS[key[0]]
        value = loader()
        if DISK_HITS[key[0]] == hits:  # parsed, not loaded from the disk cache
            READS[key[0]] += 1
        _CACHE[key] = value
        return value


def cached_value(key: tuple[Any, ...], loader: Callable[[], T]) -> T:
    """Cache anything else (e.g. package data frames) under an explicit key."""
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        value = loader()
        _CACHE[key] = value
        return value


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
        READS.clear()
        DISK_HITS.clear()


# --- on-disk cache (across processes) ------------------------------------------------------

#: Bump when the stored layout changes.
DISK_FORMAT = 1
#: Modules whose code decides a parsed result: a change to any of them invalidates entries.
_PARSING_MODULES = ("parsing.py", "readers.py", "validation.py", "config.py", "cache.py")
#: number of entries each resolved path was loaded from disk (for tests and describe()).
DISK_HITS: Counter[str] = Counter()
_log = logging.getLogger(__name__)


@functools.cache
def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _PARSING_MODULES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def disk_cached(
    path: Path,
    spec: Any,
    root: Path | None,
    loader: Callable[[], T],
    dump: Callable[[T, Path], None],
    load: Callable[[Path], T],
) -> T:
    """``loader()``'s result for ``path`` parsed with ``spec``, stored under ``root`` keyed by
    the file's content hash, the parse spec and the parsing code, so that a later process
    loads it (e.g. a Parquet copy of a validated CSV) instead of parsing again.

    ``root`` None: no disk cache. Only successfully parsed results are stored (a failing
    file raises again next time); a changed file, spec or parser gets a new entry and the
    entry it replaces is deleted. An unreadable entry is rebuilt; a cache that cannot be
    written (read-only or full disk) only costs the parse. Entries are written to a temporary
    folder and renamed into place, so concurrent processes never see a partial entry.
    """
    if root is None:
        return loader()
    resolved = path.resolve()
    slot = hashlib.sha256(
        f"{resolved}\0{spec!r}\0{DISK_FORMAT}\0{_code_digest()}".encode()
    ).hexdigest()[:24]
    entry = root / f"{slot}-{file_digest(resolved)[:32]}"
    if (entry / "complete").is_file():
        try:
            value = load(entry)
            DISK_HITS[str(resolved)] += 1
            return value
        except Exception as exc:  # corrupt entry: parse again and replace it
            _log.warning("source cache entry %s unreadable (%s); parsing %s again",
                         entry, exc, resolved)
            shutil.rmtree(entry, ignore_errors=True)
    value = loader()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{slot}-", dir=root))
        dump(value, tmp)
        (tmp / "complete").write_text(str(resolved))
        try:
            os.replace(tmp, entry)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
        for old in root.glob(f"{slot}-*"):
            if old != entry:
                shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        _log.warning("source cache %s not written (%s); %s is parsed each run", root, exc,
                     resolved)
    return value
