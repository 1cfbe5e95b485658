"""Fixtures and hooks of every test module; they live in :mod:`beta_pipeline_tests.support`.

- ``home``, ``warehouse_path``, ``shared_data``: :mod:`beta_pipeline_tests.support.fixtures`;
- the ``gpu`` marker's skip without CUDA: :mod:`beta_pipeline_tests.support.markers`.
"""

from __future__ import annotations

from beta_pipeline_tests.support.fixtures import home, shared_data, warehouse_path
from beta_pipeline_tests.support.markers import pytest_collection_modifyitems

__all__ = ["home", "pytest_collection_modifyitems", "shared_data", "warehouse_path"]
