"""The ``slow`` and ``gpu`` markers (registered in ``pyproject.toml``; ``--strict-markers``).

- ``slow``: a test that takes more than about 20 s (services, end-to-end CLI runs, long
  materializations); ``pytest -m "not slow"`` runs the fast rest.
- ``gpu``: a test that needs CUDA; skipped when ``torch.cuda.is_available()`` is false.
  ``pytest -m gpu`` runs only those.
"""

from __future__ import annotations

import pytest


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``gpu`` tests without CUDA (torch is imported only when there are any)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is false")
    for item in gpu_items:
        item.add_marker(skip)
