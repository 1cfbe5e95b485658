"""Vectorised beta estimators on (dates × assets) panels: pure numpy/pandas, no Dagster.

Panel convention: ``y`` is (T, N) (NaN = missing), factors ``x`` are (T,), (T, k) shared by
all assets, or (T, N, k) per asset. Every output dated t uses rows up to t only.
"""

from beta_pipeline.lib.estimators._panel import RegressionResult
from beta_pipeline.lib.estimators.adjusted import blume, dimson, vasicek, welch, welch_clip
from beta_pipeline.lib.estimators.hedging import (
    hedge_errors_wide,
    hedging_errors,
    hedging_report,
)
from beta_pipeline.lib.estimators.kalman import KalmanResult, kalman_filter, kalman_filter_multi
from beta_pipeline.lib.estimators.kalman_mle import (
    KalmanParams,
    fit_kalman_mle,
    fit_kalman_panel,
    fit_kalman_pooled,
    kalman_betas,
)
from beta_pipeline.lib.estimators.long import (
    LONG_COLUMNS,
    estimate_betas_long,
    pivot_betas,
    pivot_returns,
    unpivot,
)
from beta_pipeline.lib.estimators.regression import (
    ew_wls,
    expanding_ols,
    rolling_ols,
    rolling_regression,
)
from beta_pipeline.lib.estimators.tuning import tune_half_life


def __getattr__(name: str) -> object:
    """``TimeVaryingBetaModel`` on first use (it imports statsmodels)."""
    if name == "TimeVaryingBetaModel":
        from beta_pipeline.lib.estimators.kalman_statsmodels import TimeVaryingBetaModel

        return TimeVaryingBetaModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LONG_COLUMNS",
    "KalmanParams",
    "KalmanResult",
    "RegressionResult",
    "TimeVaryingBetaModel",
    "blume",
    "dimson",
    "estimate_betas_long",
    "ew_wls",
    "expanding_ols",
    "fit_kalman_mle",
    "fit_kalman_panel",
    "fit_kalman_pooled",
    "hedge_errors_wide",
    "hedging_errors",
    "hedging_report",
    "kalman_betas",
    "kalman_filter",
    "kalman_filter_multi",
    "pivot_betas",
    "pivot_returns",
    "rolling_ols",
    "rolling_regression",
    "tune_half_life",
    "unpivot",
    "vasicek",
    "welch",
    "welch_clip",
]
