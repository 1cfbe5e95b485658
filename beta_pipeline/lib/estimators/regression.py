"""Rolling, expanding and exponentially weighted least squares on a (dates × assets) panel.

One engine serves all three: per asset it keeps the (weighted) window sums of
``1, x_j, y, x_j x_l, x_j y, y²`` over the observations where y and every factor exist, and
solves the normal equations in closed form (k = 1) or by an element-wise Cholesky (k > 1).

Numerical stability (30-year daily panels):

* Sums are never carried across the whole sample. The panel is cut into row tiles of
  ``chunk_rows`` rows; each tile starts from a direct (BLAS) sum over its first window and
  then slides with ``S_t = lam * S_{t-1} + z_t - lam**h * z_{t-h}``, so rounding error cannot
  build up over more than one tile.
* With an intercept, each tile subtracts a shift from y (per asset) and from each factor
  before forming products: the first usable observation of the tile. Moments about a
  point inside the data avoid the cancellation of ``sum x² - n mean²`` on series with large
  level offsets; the shift only uses rows up to the first output row's data, so no output
  depends on later data (the expanding version uses one shift per asset for the whole
  sample: its first usable observation).
* Without an intercept no shift is possible: slopes come from raw sums (safe), while R² and
  the residual std use ``ssr = syy - beta'Sxy``, which loses relative precision
  ~ ``eps / (1 - R²)`` when the fit is almost perfect.

Weights (EW-WLS): an observation of age ``a`` (0 = the row itself) gets ``0.5 ** (a / hl)``.
The residual std of a weighted fit is ``sqrt(sum w e² / sum w * n / (n - p))`` (equal to the
OLS value when all weights are 1); ``beta_se`` is statsmodels' WLS ``bse`` with those weights.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from beta_pipeline.lib.estimators._panel import RegressionResult, as_x, as_y
from beta_pipeline.lib.estimators._solve import PIVOT_TOL, chol_solve

#: Default row-tile length (outputs per tile); sums restart from scratch every tile.
CHUNK_ROWS = 256
#: Default number of assets per column block (one block is one task for a thread).
BLOCK_COLS = 512
#: Bytes of per-row moments one column block may hold (bounds peak memory, see ``bc``).
MOMENT_BYTES = 48 << 20
#: Elements per sub-block of the closed-form solution (keeps temporaries in cache).
SOLVE_ELEMENTS = 16384


class _Layout:
    """Index of each moment in the stacked moment array ``Z[row, moment, asset]``."""

    def __init__(self, k: int, intercept: bool, weighted: bool) -> None:
        self.k = k
        pos = 1  # 0 is the (weighted) count
        self.x = list(range(pos, pos + k)) if intercept else []
        pos += k if intercept else 0
        self.y = pos if intercept else -1
        pos += 1 if intercept else 0
        self.xx: dict[tuple[int, int], int] = {}
        for j in range(k):
            for m in range(j + 1):
                self.xx[(j, m)] = pos
                pos += 1
        self.xy = list(range(pos, pos + k))
        pos += k
        self.yy = pos
        pos += 1
        self.n = pos if weighted else 0
        pos += 1 if weighted else 0
        self.size = pos


def rolling_regression(
    y: np.ndarray,
    x: np.ndarray,
    window: int | None,
    *,
    min_obs: int | None = None,
    intercept: bool = True,
    half_life: float | None = None,
    chunk_rows: int = CHUNK_ROWS,
    block_cols: int = BLOCK_COLS,
    n_threads: int | None = None,
    from_row: int = 0,
    origin: int = 0,
) -> RegressionResult:
    """Regress each column of ``y`` on ``x`` over trailing windows (no look-ahead).

    ``y``: (T, N) or (T,), NaN = missing. ``x``: (T,), (T, k) shared by all assets, or
    (T, N, k) per asset; NaN allowed. ``window``: rows t-window+1..t, or None for all rows up
    to t (expanding). ``min_obs``: usable observations needed (default: ``window``, or
    ``params + 1`` when expanding); never fewer than the number of parameters.
    ``half_life``: None for OLS, else exponential weights ``0.5 ** (age / half_life)``.
    ``from_row``: only rows ``from_row..`` are wanted (a finite window only; ignored when
    expanding): row tiles ending before it are skipped and rows before it are NaN (0
    observations). The rows computed are bit-identical to a run with ``from_row=0``: tiles
    stay aligned to row 0 and each kept row's sums and solve are the same operations.
    ``origin``: the row number of ``y``'s first row in a longer panel that this one is the
    tail of: tiles are aligned to that panel's row 0, so with enough rows before
    ``from_row`` (the window and one tile; else ValueError) the rows equal that panel's.
    """
    yy = as_y(y)
    t_len, n_assets = yy.shape
    xx = as_x(x, t_len, n_assets)
    k = xx.shape[2]
    p = k + int(intercept)
    if window is not None:
        window = int(window)
        if window < 1:
            raise ValueError("window must be >= 1")
    if half_life is not None and not half_life > 0:
        raise ValueError("half_life must be > 0")
    if min_obs is None:
        min_obs = window if window is not None else p + 1
    min_eff = max(int(min_obs), p, 1)
    lam = 1.0 if half_life is None else 0.5 ** (1.0 / half_life)
    out = RegressionResult(
        beta=np.empty((t_len, n_assets, k)),
        alpha=np.empty((t_len, n_assets)),
        r2=np.empty((t_len, n_assets)),
        resid_std=np.empty((t_len, n_assets)),
        beta_se=np.empty((t_len, n_assets, k)),
        n_obs=np.empty((t_len, n_assets), dtype=np.int32),
    )
    if t_len == 0 or n_assets == 0:
        return out
    lay = _Layout(k, intercept, weighted=half_life is not None)
    skip = min(max(int(from_row), 0), t_len) if window is not None else 0
    if skip:
        for a in (out.beta, out.alpha, out.r2, out.resid_std, out.beta_se):
            a[:skip] = np.nan
        out.n_obs[:skip] = 0
    # long windows: longer tiles, so the first-window recomputation stays a small overhead
    chunk = max(int(chunk_rows), window or 1, 1)
    threads = max(1, n_threads if n_threads is not None else os.cpu_count() or 1)
    bc = max(1, min(int(block_cols), -(-n_assets // threads)))
    # a block's per-row moments (window + tile rows x moments x assets) stay within
    # MOMENT_BYTES: many factors (Dimson FF5: 16 x 17 / 2 moments) get narrower blocks.
    # Blocks are independent columns, so their width never changes a number.
    span = chunk + (window or 0)
    bc = max(1, min(bc, MOMENT_BYTES // (8 * lay.size * span)))
    blocks = [(c, min(c + bc, n_assets)) for c in range(0, n_assets, bc)]

    def run(block: tuple[int, int]) -> None:
        _run_block(
            yy, xx, out, block, window, lam, lay, intercept, min_eff, chunk, skip, origin
        )

    if threads <= 1 or len(blocks) == 1:
        for blk in blocks:
            run(blk)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, blocks))
    return out


def rolling_ols(
    y: np.ndarray,
    x: np.ndarray,
    window: int,
    min_obs: int | None = None,
    intercept: bool = True,
    **engine: int,
) -> RegressionResult:
    """Rolling-window OLS over the last ``window`` rows (see :func:`rolling_regression`)."""
    return rolling_regression(y, x, window, min_obs=min_obs, intercept=intercept, **engine)


def expanding_ols(
    y: np.ndarray,
    x: np.ndarray,
    min_obs: int | None = None,
    intercept: bool = True,
    **engine: int,
) -> RegressionResult:
    """Entire-period OLS: all rows from the start up to t (see :func:`rolling_regression`)."""
    return rolling_regression(y, x, None, min_obs=min_obs, intercept=intercept, **engine)


def ew_wls(
    y: np.ndarray,
    x: np.ndarray,
    half_life: float,
    window: int | None = None,
    min_obs: int | None = None,
    intercept: bool = True,
    **engine: int,
) -> RegressionResult:
    """Exponentially weighted WLS, weight ``0.5 ** (age / half_life)`` (age 0 = row t).

    ``window``: finite window of rows t-window+1..t, or None for all rows up to t.
    """
    return rolling_regression(
        y, x, window, min_obs=min_obs, intercept=intercept, half_life=half_life, **engine
    )


def _first_usable(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per column, ``values`` at the first True row of ``mask`` (0 where none)."""
    first = mask.argmax(axis=0)
    cols = np.arange(mask.shape[1])
    has = mask[first, cols]
    return np.where(has, values[first, np.minimum(cols, values.shape[1] - 1)], 0.0)


def _shifts(
    yt: np.ndarray, xt: np.ndarray, m: np.ndarray, xfin: np.ndarray, intercept: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Shift of y per asset (1, nb) and of each factor (1, 1|nb, k): first usable values."""
    k = xt.shape[2]
    if not intercept:
        return np.zeros((1, yt.shape[1])), np.zeros((1, 1, k))
    cy = _first_usable(m, yt)[None, :]
    cx = np.stack([_first_usable(xfin, xt[:, :, j]) for j in range(k)], axis=-1)[None]
    return cy, cx


def _moments(
    yt: np.ndarray,
    xt: np.ndarray,
    m: np.ndarray,
    xfin: np.ndarray,
    cy: np.ndarray,
    cx: np.ndarray,
    lay: _Layout,
) -> np.ndarray:
    """Per-row contributions ``Z[row, moment, asset]`` (zero where the row is unusable)."""
    rows, nb = yt.shape
    k = lay.k
    z = np.empty((rows, lay.size, nb))
    mf = z[:, 0]
    np.copyto(mf, m)
    xs = np.where(xfin[:, :, None], xt - cx, 0.0)  # (rows, 1|nb, k)
    with np.errstate(invalid="ignore"):
        ys = np.where(m, yt - cy, 0.0)
    if lay.x:
        xm = [z[:, lay.x[j]] for j in range(k)]
        for j in range(k):
            np.multiply(mf, xs[:, :, j], out=xm[j])
        z[:, lay.y] = ys
    else:
        xm = [mf * xs[:, :, j] for j in range(k)]
    for (j, m2), idx in lay.xx.items():
        np.multiply(xm[j], xs[:, :, m2], out=z[:, idx])
    for j in range(k):
        np.multiply(xm[j], ys, out=z[:, lay.xy[j]])
    np.multiply(ys, ys, out=z[:, lay.yy])
    if lay.n:
        z[:, lay.n] = mf
    return z


def _run_block(
    y: np.ndarray,
    x: np.ndarray,
    out: RegressionResult,
    block: tuple[int, int],
    window: int | None,
    lam: float,
    lay: _Layout,
    intercept: bool,
    min_eff: int,
    chunk: int,
    skip: int = 0,
    origin: int = 0,
) -> None:
    """Fill the outputs of one column block, tile by tile along the rows (rows ``skip..``
    only: earlier tiles are not computed, earlier rows of a tile not solved)."""
    c0, c1 = block
    t_len = y.shape[0]
    yb = y[:, c0:c1]
    xb = x[:, c0:c1, :] if x.shape[1] > 1 else x
    lamv = np.full((lay.size, 1), lam)
    if lay.n:
        lamv[lay.n] = 1.0  # the plain count is never down-weighted
    weighted = lam != 1.0
    carry: np.ndarray | None = None
    if window is None:
        xfin_all = np.isfinite(xb).all(axis=2)
        m_all = np.isfinite(yb) & xfin_all
        cy, cx = _shifts(yb, xb, m_all, xfin_all, intercept)
    first_tile = -(int(origin) % chunk) if window is not None else 0
    for a in range(first_tile, t_len, chunk):
        b = min(t_len, a + chunk)
        if b <= skip:
            continue
        if origin and window is not None and a - window + 1 < 0:
            raise ValueError("origin: too few rows before from_row for the window and tile")
        i0 = a if window is None else max(0, a - window + 1)
        yt = yb[i0:b]
        xt = xb[i0:b]
        xfin = np.isfinite(xt).all(axis=2)
        m = np.isfinite(yt) & xfin
        if window is not None:
            cy, cx = _shifts(yt, xt, m, xfin, intercept)
        z = _moments(yt, xt, m, xfin, cy, cx, lay)
        la = a - i0  # local index of the first output row
        if window is None:
            s = z
            if carry is not None:
                s[0] += lamv * carry if weighted else carry
            _recurse(s, lamv, weighted)
            carry = s[-1].copy()
        elif weighted:
            s = _weighted_window_sums(z, la, window, lam, lamv, lay)
        else:  # sums of the wanted rows only
            first = max(skip - a, 0)
            s = _window_sums(z, la, window, first)
            _solve_tile(s, out, a + first, b, c0, c1, lay, intercept, cy, cx, min_eff)
            continue
        _solve_tile(s, out, a, b, c0, c1, lay, intercept, cy, cx, min_eff, max(skip - a, 0))


def _recurse(s: np.ndarray, lamv: np.ndarray, weighted: bool) -> None:
    """In place ``s[r] += lam * s[r-1]`` down the rows (a running, decayed sum)."""
    if weighted:
        tmp = np.empty_like(s[0])
        for r in range(1, s.shape[0]):
            np.multiply(s[r - 1], lamv, out=tmp)
            s[r] += tmp
    else:
        for r in range(1, s.shape[0]):
            s[r] += s[r - 1]


def _window_sums(z: np.ndarray, la: int, window: int, first: int = 0) -> np.ndarray:
    """Unweighted sums over the last ``window`` rows for rows ``la + first..`` of ``z``
    (``first``: output rows of the tile not wanted; their sums are not formed).

    Prefix sums restart at the tile's first row, so their magnitude (and rounding error)
    is bounded by one tile: ``S_t = C_t - C_{t-window}``. The prefix runs over every row
    whatever ``first`` is, so a wanted row's sum is the same number either way.
    """
    _recurse(z, z[:0], weighted=False)
    rows = z.shape[0] - la
    first = min(max(int(first), 0), rows)
    head = min(rows, max(0, window - la))  # rows whose window starts at the tile's start
    s = np.empty((rows - first,) + z.shape[1:])
    n_head = max(head - first, 0)  # of them, those wanted
    s[:n_head] = z[la + first : la + first + n_head]
    r0 = la + first + n_head  # first wanted row whose window leaves the tile's start
    np.subtract(z[r0:], z[r0 - window : z.shape[0] - window], out=s[n_head:])
    return s


def _weighted_window_sums(
    z: np.ndarray, la: int, window: int, lam: float, lamv: np.ndarray, lay: _Layout
) -> np.ndarray:
    """Exponentially weighted window sums: a direct sum for the first output row, then
    ``S_r = lam S_{r-1} + z_r - lam^window z_{r-window}``."""
    s = z[la:].copy()
    head = z[: la + 1]
    w = lam ** np.arange(la, -1, -1, dtype=np.float64)
    s[0] = np.tensordot(w, head, axes=(0, 0))
    if lay.n:
        s[0, lay.n] = head[:, lay.n].sum(axis=0)
    first = max(1, window - la)  # first output row with a row leaving its window
    if first < s.shape[0]:
        s[first:] -= (lamv**window) * z[la + first - window : z.shape[0] - window]
    _recurse(s, lamv, weighted=True)
    return s


def _solve_tile(
    s: np.ndarray,
    out: RegressionResult,
    a: int,
    b: int,
    c0: int,
    c1: int,
    lay: _Layout,
    intercept: bool,
    cy: np.ndarray,
    cx: np.ndarray,
    min_eff: int,
    first: int = 0,
) -> None:
    """Estimates from window sums ``s[row, moment, asset]`` into the outputs, in sub-blocks
    of rows small enough for the temporaries to stay in cache (from the tile's row
    ``first``: every row's solve is element-wise, so the sub-block cut does not matter)."""
    sub = max(1, SOLVE_ELEMENTS // max(c1 - c0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        for r0 in range(first, b - a, sub):
            r1 = min(b - a, r0 + sub)
            _solve_rows(
                s[r0:r1], out, slice(a + r0, a + r1), slice(c0, c1), lay, intercept, cy, cx, min_eff
            )


def _solve_rows(
    s: np.ndarray,
    out: RegressionResult,
    rows: slice,
    cols: slice,
    lay: _Layout,
    intercept: bool,
    cy: np.ndarray,
    cx: np.ndarray,
    min_eff: int,
) -> None:
    """Closed-form OLS/WLS for one sub-block (k = 1 explicitly, k > 1 by Cholesky).

    Invalid windows get NaN added to every slope, which then propagates to all outputs.
    """
    k = lay.k
    p = k + int(intercept)
    wsum = s[:, 0]
    n = s[:, lay.n] if lay.n else wsum
    np.copyto(out.n_obs[rows, cols], n, casting="unsafe")
    if k == 1 and intercept:
        _solve_rows_k1(s, out, rows, cols, lay, cy, cx, min_eff, n, wsum)
        return
    if intercept:
        inv_w = 1.0 / wsum
        mx = [s[:, lay.x[j]] * inv_w for j in range(k)]
        sy = s[:, lay.y]
        my = sy * inv_w
        amat = {}
        for (j, m), idx in lay.xx.items():
            t = s[:, lay.x[j]] * mx[m]
            amat[(j, m)] = np.subtract(s[:, idx], t, out=t)
        rhs = []
        for j in range(k):
            t = s[:, lay.x[j]] * my
            rhs.append(np.subtract(s[:, lay.xy[j]], t, out=t))
        syy = sy * my
        np.subtract(s[:, lay.yy], syy, out=syy)
    else:
        amat = {key: s[:, idx] for key, idx in lay.xx.items()}
        rhs = [s[:, lay.xy[j]] for j in range(k)]
        syy = s[:, lay.yy]
    scale = [s[:, lay.xx[(j, j)]] for j in range(k)]
    beta, inv_diag, ok = chol_solve(amat, rhs, scale)
    ok &= n >= min_eff - 0.5
    nan_add = np.where(ok, 0.0, np.nan)
    ssr = syy.copy()
    for j in range(k):
        beta[j] += nan_add
        np.copyto(out.beta[rows, cols, j], beta[j])
        ssr -= beta[j] * rhs[j]
    np.maximum(ssr, 0.0, out=ssr)  # NaN stays NaN
    r2 = np.divide(ssr, syy, out=out.r2[rows, cols])
    np.subtract(1.0, r2, out=r2)
    dof = n - p
    dof[dof < 0.5] = np.nan
    s2 = np.divide(ssr, dof, out=ssr)
    for j in range(k):
        se = np.multiply(s2, inv_diag[j], out=out.beta_se[rows, cols, j])
        np.sqrt(se, out=se)
    if lay.n:
        s2 = s2 * n / wsum
    np.sqrt(s2, out=out.resid_std[rows, cols])
    if intercept:
        alpha = np.add(my, cy, out=out.alpha[rows, cols])
        for j in range(k):
            mx[j] += cx[:, :, j]
            mx[j] *= beta[j]
            alpha -= mx[j]
    else:
        out.alpha[rows, cols] = np.nan


def _solve_rows_k1(
    s: np.ndarray,
    out: RegressionResult,
    rows: slice,
    cols: slice,
    lay: _Layout,
    cy: np.ndarray,
    cx: np.ndarray,
    min_eff: int,
    n: np.ndarray,
    wsum: np.ndarray,
) -> None:
    """One factor with intercept: explicit formulas with few temporaries (the hot path)."""
    sx, sy, sxx_raw, sxy_raw, syy_raw = (s[:, i] for i in (1, 2, 3, 4, 5))
    mx = sx / wsum
    my = sy / wsum
    sxx = sx * mx
    np.subtract(sxx_raw, sxx, out=sxx)
    sxy = sx * my
    np.subtract(sxy_raw, sxy, out=sxy)
    syy = sy * my
    np.subtract(syy_raw, syy, out=syy)
    ok = sxx > PIVOT_TOL * sxx_raw
    ok &= n >= min_eff - 0.5
    sxx = np.where(ok, sxx, np.nan)  # invalid windows: NaN flows into every output
    beta = np.divide(sxy, sxx, out=out.beta[rows, cols, 0])
    r2 = np.multiply(beta, sxy, out=out.r2[rows, cols])
    r2 /= syy  # = 1 - ssr / syy
    ssr = np.subtract(1.0, r2, out=sxy)
    ssr *= syy
    np.maximum(ssr, 0.0, out=ssr)
    dof = n - 2.0
    if min_eff <= 2:
        dof[dof < 0.5] = np.nan
    s2 = np.divide(ssr, dof, out=ssr)
    if lay.n:
        np.sqrt(s2 * n / wsum, out=out.resid_std[rows, cols])
    else:
        np.sqrt(s2, out=out.resid_std[rows, cols])
    se = np.divide(s2, sxx, out=out.beta_se[rows, cols, 0])
    np.sqrt(se, out=se)
    mx += cx[:, :, 0]
    mx *= beta
    alpha = np.add(my, cy, out=out.alpha[rows, cols])
    alpha -= mx
