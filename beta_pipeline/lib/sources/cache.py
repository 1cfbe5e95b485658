"""In-process cache of parsed files, keyed by (resolved path, mtime, size, parse spec).

A multi-asset run builds several sources (or calls one several times); each file is read
and validated once per process and per parse spec. A file changed on disk (new mtime or
size) is read again. Only successfully parsed results are stored, so a failing file
raises again on the next call.
"""

from __future__ import annotations

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
        value = loader()
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
