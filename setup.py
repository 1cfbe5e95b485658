"""Packages of the wheel: ``beta_pipeline*`` plus the SQL models as package data.

The SQL models stay in the top-level ``dbt_like_sql/`` folder; the wheel ships them as the
data package ``beta_pipeline.dbt_like_sql`` (``package_dir`` maps it), where
``beta_pipeline.defs.sql_models.assets.sql_dir`` finds them in an installed copy. Everything
else is configured in pyproject.toml (pyproject's ``packages.find`` cannot add a mapped folder).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["beta_pipeline*"]), "beta_pipeline.dbt_like_sql"],
    package_dir={"beta_pipeline.dbt_like_sql": "dbt_like_sql"},
)
