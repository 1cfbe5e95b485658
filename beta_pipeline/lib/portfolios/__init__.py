"""Portfolio sorts on beta beyond the pure sort core (:mod:`beta_pipeline.lib.sorts`): the
warehouse reads of the signals (:mod:`.signals`), the batch and summary steps of the assets
(:mod:`.pipeline`), the figures (:mod:`.plots`, matplotlib on first drawing) and the
warehouse tables (:mod:`.tables`). No Dagster import."""
