"""Dagster layer of beta_pipeline: assets, checks, partitions, schedules and resources.

Single-run backfill policies, partition mappings onto missing upstream partitions and
partitioned asset checks are marked beta/preview by Dagster 1.13; the project relies on
them deliberately (see README), so their warnings are silenced here.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from beta_pipeline.defs import instance_tuning  # noqa: E402
from beta_pipeline.settings import configure_dagster_env  # noqa: E402

instance_tuning.install()
configure_dagster_env()
