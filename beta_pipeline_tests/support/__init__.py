"""Helpers and fixtures of the tests (no tests here; pytest does not collect this package).

- :mod:`.paths`: ``REPO_ROOT`` and the one :func:`~.paths.shared_data_dir` (``shared/data``);
- :mod:`.fixtures`: the per-test fixtures ``home``, ``warehouse_path`` and ``shared_data``
  (made available to every test module by ``beta_pipeline_tests/conftest.py``);
- :mod:`.markers`: the ``slow`` and ``gpu`` markers' collection hook (``gpu`` tests skip
  without CUDA);
- :mod:`.defs`: definitions bound to test resources, runs over a partition or a range,
  warehouse reads, tiny csv sources and slices of ``shared/data`` (``test_defs_*``);
- :mod:`.sources`: config writers, error assertions and a network block (``test_sources_*``);
- :mod:`.storage`: an instance from a home's config and a snapshot of what a backfill
  recorded in it (``test_storage_*``);
- :mod:`.pg_server`: a throwaway PostgreSQL server;
- :mod:`.dagster_dev`: ``dagster dev`` (webserver + daemon) on a test's home;
- :mod:`.tags`: Dagster's documented run tag keys, as literal strings;
- :mod:`.dagster_private`: the only access to private Dagster modules (fenced, version
  checked), for what has no public API.
"""
