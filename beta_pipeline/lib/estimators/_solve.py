"""Element-wise solution of many small symmetric positive definite systems.

Each matrix entry is an array (one system per element), so a k×k system over a
(rows, assets) tile costs O(k³) vectorised operations instead of one LAPACK call per system.
"""

from __future__ import annotations

import numpy as np

#: A pivot below ``PIVOT_TOL`` times its diagonal scale marks the window as singular.
PIVOT_TOL = 1e-11


def chol_solve(
    a: dict[tuple[int, int], np.ndarray],
    b: list[np.ndarray],
    scale: list[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Solve ``A beta = b`` element-wise by Cholesky.

    ``a[(i, j)]`` (i >= j) holds the lower triangle, ``b[j]`` the right-hand side and
    ``scale[j]`` a positive magnitude for the singularity test of pivot j. Returns
    ``(beta, inv_diag, ok)``: the solution, the diagonal of ``A^-1`` and a bool array that is
    False where a pivot was not clearly positive (the solution there is garbage).
    """
    k = len(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        if k == 1:
            a00 = a[(0, 0)]
            ok = a00 > PIVOT_TOL * scale[0]
            inv = 1.0 / a00
            return [b[0] * inv], [inv], ok
        low: dict[tuple[int, int], np.ndarray] = {}
        ok = np.ones(np.shape(b[0]), dtype=bool)
        for j in range(k):
            s = a[(j, j)].copy()
            for p in range(j):
                s -= low[(j, p)] * low[(j, p)]
            ok &= s > PIVOT_TOL * scale[j]
            d = np.sqrt(np.where(ok, s, 1.0))
            low[(j, j)] = d
            for i in range(j + 1, k):
                v = a[(i, j)].copy()
                for p in range(j):
                    v -= low[(i, p)] * low[(j, p)]
                low[(i, j)] = v / d
        z: list[np.ndarray] = []
        for j in range(k):
            v = b[j].copy()
            for p in range(j):
                v -= low[(j, p)] * z[p]
            z.append(v / low[(j, j)])
        beta: list[np.ndarray] = [np.empty(0)] * k
        for j in reversed(range(k)):
            v = z[j].copy()
            for p in range(j + 1, k):
                v -= low[(p, j)] * beta[p]
            beta[j] = v / low[(j, j)]
        # inverse of L column by column; (A^-1)_jj = sum_i (L^-1)_ij^2
        linv: dict[tuple[int, int], np.ndarray] = {}
        for j in range(k):
            linv[(j, j)] = 1.0 / low[(j, j)]
            for i in range(j + 1, k):
                v = low[(i, j)] * linv[(j, j)]
                for p in range(j + 1, i):
                    v = v + low[(i, p)] * linv[(p, j)]
                linv[(i, j)] = -v / low[(i, i)]
        inv_diag = []
        for j in range(k):
            v = linv[(j, j)] * linv[(j, j)]
            for i in range(j + 1, k):
                v = v + linv[(i, j)] * linv[(i, j)]
            inv_diag.append(v)
    return beta, inv_diag, ok
