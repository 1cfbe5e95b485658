"""The time-varying-beta state space models as statsmodels ``MLEModel``s (imported lazily by
:func:`.kalman_mle.fit_kalman_mle`, so the daily path does not load statsmodels)."""

from __future__ import annotations

import numpy as np
from statsmodels.tsa.statespace.mlemodel import MLEModel


class TimeVaryingBetaModel(MLEModel):
    """``y_t = alpha + beta_t x_t + e_t``, random-walk or AR(1) beta, known initial state.

    Parameters (in order): ``alpha`` (only when ``fit_alpha``), ``h`` (measurement variance),
    ``q`` (state variance), and for ``ar1`` also ``phi`` and ``mu``. Missing y or x rows are
    skipped by the filter.
    """

    def __init__(
        self,
        endog: np.ndarray,
        exog: np.ndarray,
        *,
        ar1: bool = False,
        fit_alpha: bool = True,
        beta0: float = 1.0,
        p0: float = 1.0,
    ) -> None:
        y = np.asarray(endog, dtype=np.float64).ravel()
        x = np.asarray(exog, dtype=np.float64).ravel()
        obs = np.isfinite(y) & np.isfinite(x)
        y = np.where(obs, y, np.nan)
        x = np.where(obs, x, 0.0)
        super().__init__(
            y,
            k_states=1,
            initialization="known",
            initial_state=[beta0],
            initial_state_cov=[[p0]],
        )
        self.ar1 = ar1
        self.fit_alpha = fit_alpha
        self._x = x
        self._obs = obs
        self["design"] = x.reshape(1, 1, -1)
        self["selection", 0, 0] = 1.0
        self["transition", 0, 0] = 1.0

    @property
    def param_names(self) -> list[str]:  # type: ignore[override]
        names = (["alpha"] if self.fit_alpha else []) + ["h", "q"]
        return names + (["phi", "mu"] if self.ar1 else [])

    @property
    def start_params(self) -> np.ndarray:  # type: ignore[override]
        y, x = self.endog[:, 0][self._obs], self._x[self._obs]
        if y.size > 2 and np.var(x) > 0:
            slope, icpt = np.polyfit(x, y, 1)
            resid = y - icpt - slope * x
            h0 = max(float(np.var(resid)), 1e-12)
        else:
            slope, icpt, h0 = 1.0, 0.0, max(float(np.nanvar(y)) if y.size else 1.0, 1e-12)
        q0 = 1e-3 * h0 / max(float(np.mean(x * x)) if x.size else 1.0, 1e-300)
        start = ([icpt] if self.fit_alpha else []) + [h0, q0]
        return np.array(start + ([0.9, slope] if self.ar1 else []), dtype=np.float64)

    def transform_params(self, unconstrained: np.ndarray) -> np.ndarray:
        out = np.array(unconstrained, dtype=np.float64, copy=True)
        i = int(self.fit_alpha)
        out[i : i + 2] = np.exp(unconstrained[i : i + 2])
        if self.ar1:
            out[i + 2] = np.tanh(unconstrained[i + 2])
        return out

    def untransform_params(self, constrained: np.ndarray) -> np.ndarray:
        out = np.array(constrained, dtype=np.float64, copy=True)
        i = int(self.fit_alpha)
        out[i : i + 2] = np.log(constrained[i : i + 2])
        if self.ar1:
            out[i + 2] = np.arctanh(np.clip(constrained[i + 2], -0.999999, 0.999999))
        return out

    def update(self, params: np.ndarray, **kwargs: object) -> None:
        params = super().update(params, **kwargs)
        i = int(self.fit_alpha)
        self["obs_intercept", 0, 0] = params[0] if self.fit_alpha else 0.0
        self["obs_cov", 0, 0] = params[i]
        self["state_cov", 0, 0] = params[i + 1]
        if self.ar1:
            phi, mu = params[i + 2], params[i + 3]
            self["transition", 0, 0] = phi
            self["state_intercept", 0, 0] = mu * (1.0 - phi)


class InterceptStateBetaModel(MLEModel):
    """``y_t = alpha + beta_t x_t + e_t`` with state ``[alpha, beta_t]``: alpha constant,
    beta a random walk, both with an approximately diffuse start (the ``kalman_step``
    study; :func:`.kalman.kalman_filter` with ``alpha_var``). Parameters: ``h``
    (measurement variance), ``q`` (state variance), squared on the optimiser's scale."""

    def __init__(self, endog: np.ndarray, exog: np.ndarray) -> None:
        super().__init__(endog, k_states=2, k_posdef=1, initialization="approximate_diffuse")
        design = np.zeros((1, 2, len(endog)))
        design[0, 0] = 1.0
        design[0, 1] = exog
        self["design"] = design
        self["transition"] = np.eye(2)
        self["selection"] = np.array([[0.0], [1.0]])

    @property
    def param_names(self) -> list[str]:  # type: ignore[override]
        return ["h", "q"]

    @property
    def start_params(self) -> np.ndarray:  # type: ignore[override]
        return np.array([np.var(self.endog) / 2, 1e-2])

    def transform_params(self, unconstrained: np.ndarray) -> np.ndarray:
        return unconstrained**2

    def untransform_params(self, constrained: np.ndarray) -> np.ndarray:
        return constrained**0.5

    def update(self, params: np.ndarray, **kwargs: object) -> None:
        params = super().update(params, **kwargs)
        self["obs_cov", 0, 0] = params[0]
        self["state_cov", 0, 0] = params[1]
