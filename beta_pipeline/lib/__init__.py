"""Pure computational core of beta_pipeline: no Dagster imports below this package."""
