"""Quality checks of the canonical daily returns frame (``schema.DAILY_RETURN_COLUMNS``).

Great Expectations decides keys (not null, unique) and the hard bounds of a simple return
(-1 < ret <= 10, not null, finite); a vectorised rule flags suspicious moves: large returns
that reverse the next day (bad prints) or that happen without a market move.

The reversal rule starts at 15 %, below the 25 % of the market rule: the known one-day bad
prints of the Kaggle S&P 500 file (O 2013-12-20 +17.8 %, EFX/MPC 2017-09-14 +19.5/+21.7 %)
are smaller than 25 %, while a >= 15 % move that gives back half of itself the next day is
rare enough in real prices (14 cases in 619k rows, most of them bad prints).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from beta_pipeline.lib.quality._frames import (
    fmt_date,
    fmt_pct,
    require_columns,
    valid_keys,
    working_copy,
)
from beta_pipeline.lib.quality.gx_engine import GxRule, expectations, gx_outcome, run_rules
from beta_pipeline.lib.quality.outcome import MAX_ROWS_KEPT, CheckOutcome, make_rows

RET_MIN = -1.0  # exclusive: a simple return of -100 % or less is impossible for a price > 0
RET_MAX = 10.0  # inclusive: +1000 % in one day is treated as a data error
JUMP = 0.25  # |ret| above this without a market move is suspicious
REVERSAL_JUMP = 0.15  # |ret| above this that reverses the next day is suspicious
REVERSAL_RATIO = 0.5  # next-day return of opposite sign and at least this share of |ret|
REVERSAL_TOLERANCE = 0.05  # ... or the price is back within 5 % of its pre-jump level
MARKET_MOVE = 0.02  # |mkt_excess| below this: the market did not move that day

RETURN_CHECKS: tuple[str, ...] = (
    "returns_keys_not_null",
    "returns_keys_unique",
    "returns_hard_bounds",
    "returns_suspicious_moves",
)

_COLUMNS = ["date", "symbol", "prev_date", "ret", "mkt_excess"]


def _gx_rules(ret_min: float, ret_max: float) -> list[GxRule]:
    gxe = expectations()
    return [
        GxRule(
            "returns_keys_not_null",
            gxe.ExpectColumnValuesToNotBeNull(column="date"),
            "date is null",
        ),
        GxRule(
            "returns_keys_not_null",
            gxe.ExpectColumnValuesToNotBeNull(column="symbol"),
            "symbol is null",
        ),
        GxRule(
            "returns_keys_unique",
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "symbol"]),
            "duplicate (date, symbol) key",
        ),
        GxRule(
            "returns_hard_bounds",
            gxe.ExpectColumnValuesToNotBeNull(column="ret"),
            "return is NaN",
            value_column="ret",
        ),
        # +-inf fall outside any finite bounds, so this also enforces finiteness.
        GxRule(
            "returns_hard_bounds",
            gxe.ExpectColumnValuesToBeBetween(
                column="ret", min_value=ret_min, strict_min=True, max_value=ret_max
            ),
            f"return outside ({ret_min:g}, {ret_max:g}]",
            value_column="ret",
        ),
    ]


def check_returns(
    returns: pd.DataFrame,
    next_day: pd.DataFrame | None = None,
    *,
    jump: float = JUMP,
    reversal_jump: float = REVERSAL_JUMP,
    reversal_ratio: float = REVERSAL_RATIO,
    reversal_tolerance: float = REVERSAL_TOLERANCE,
    market_move: float = MARKET_MOVE,
    flag_reverting_day: bool = True,
    ret_min: float = RET_MIN,
    ret_max: float = RET_MAX,
    max_rows: int = MAX_ROWS_KEPT,
) -> list[CheckOutcome]:
    """Run every return check; one CheckOutcome per name in ``RETURN_CHECKS``, in that order.

    ``next_day`` optionally holds returns dated after ``returns`` (e.g. the day after a
    partition range) so that a jump on the last day can still be seen reversing; only rows
    of ``returns`` are ever flagged. Without a next return a jump is judged by the market
    rule alone.
    """
    require_columns(returns, ["date", "symbol", "ret", "mkt_excess"], "returns")
    cols = [c for c in _COLUMNS if c in returns.columns]
    frame = working_copy(returns, cols)
    if not pd.api.types.is_float_dtype(frame["ret"]):
        frame["ret"] = pd.to_numeric(frame["ret"], errors="coerce").astype("float64")

    results = run_rules(frame, _gx_rules(ret_min, ret_max), max_rows)
    outcomes = [
        gx_outcome(
            "returns_keys_not_null",
            frame,
            results,
            "error",
            "every row has a date and a symbol",
            "{n} key value(s) (date or symbol) are null",
            max_rows,
        ),
        gx_outcome(
            "returns_keys_unique",
            frame,
            results,
            "error",
            "(date, symbol) is unique",
            "{n} rows share their (date, symbol) key with another row",
            max_rows,
        ),
        gx_outcome(
            "returns_hard_bounds",
            frame,
            results,
            "error",
            f"every return is finite and within ({ret_min:g}, {ret_max:g}]",
            f"{{n}} return(s) are NaN, infinite or outside ({ret_min:g}, {ret_max:g}]",
            max_rows,
        ),
    ]
    outcomes.append(
        suspicious_moves(
            frame,
            next_day,
            jump=jump,
            reversal_jump=reversal_jump,
            reversal_ratio=reversal_ratio,
            reversal_tolerance=reversal_tolerance,
            market_move=market_move,
            flag_reverting_day=flag_reverting_day,
            max_rows=max_rows,
        )
    )
    return outcomes


def suspicious_moves(
    returns: pd.DataFrame,
    next_day: pd.DataFrame | None = None,
    *,
    jump: float = JUMP,
    reversal_jump: float = REVERSAL_JUMP,
    reversal_ratio: float = REVERSAL_RATIO,
    reversal_tolerance: float = REVERSAL_TOLERANCE,
    market_move: float = MARKET_MOVE,
    flag_reverting_day: bool = True,
    max_rows: int = MAX_ROWS_KEPT,
) -> CheckOutcome:
    """Warn on large returns that reverse the next day or come without a market move.

    Reversal rule: |ret| > ``reversal_jump`` and the symbol's next return (measured from
    this date's price: its ``prev_date`` is this date) has the opposite sign and at least
    ``reversal_ratio`` of |ret|, or brings the price back within ``reversal_tolerance`` of
    its pre-jump level. With ``flag_reverting_day`` the next day's return is listed too (it
    is measured from the bad price, so it is just as wrong).
    Market rule: |ret| > ``jump`` while |mkt_excess| < ``market_move`` that day (a missing
    market return counts as no market move).
    """
    name = "returns_suspicious_moves"
    cols = [c for c in _COLUMNS if c in returns.columns]
    cur = working_copy(returns, cols).assign(_own=True)
    parts = [cur]
    if next_day is not None and not next_day.empty:
        require_columns(next_day, ["date", "symbol", "ret"], "next_day returns")
        nxt = working_copy(next_day, [c for c in _COLUMNS if c in next_day.columns])
        last = cur["date"].max()
        if pd.notna(last):
            nxt = nxt.loc[nxt["date"] > last]
        parts.append(nxt.assign(_own=False))
    data = pd.concat(parts, ignore_index=True) if len(parts) > 1 else cur
    data = valid_keys(data)  # sorted by symbol, date; first of duplicate keys kept

    ret = data["ret"].to_numpy(dtype="float64")
    mkt = (
        data["mkt_excess"].to_numpy(dtype="float64")
        if "mkt_excess" in data.columns
        else np.full(len(data), np.nan)
    )
    own = data["_own"].to_numpy(dtype=bool)
    symbols = data["symbol"].to_numpy()
    dates = data["date"].to_numpy()
    with np.errstate(invalid="ignore"):
        size = np.abs(ret)
        cand = np.flatnonzero(own & np.isfinite(ret) & (size > min(jump, reversal_jump)))

    # the symbol's next return, when measured from this date's price
    nxt_i = cand + 1
    has_next = nxt_i < len(data)
    nxt_i = np.where(has_next, nxt_i, 0)
    has_next &= symbols[nxt_i] == symbols[cand]
    if "prev_date" in data.columns:
        prev = data["prev_date"].to_numpy()
        has_next &= np.isnat(prev[nxt_i]) | (prev[nxt_i] == dates[cand])
    r0 = ret[cand]
    r1 = np.where(has_next, ret[nxt_i], np.nan)
    m = mkt[cand]
    with np.errstate(invalid="ignore"):
        opposite = (np.sign(r1) == -np.sign(r0)) & (np.abs(r1) >= reversal_ratio * np.abs(r0))
        back = np.abs((1.0 + r0) * (1.0 + r1) - 1.0) <= reversal_tolerance
        reverses = (size[cand] > reversal_jump) & has_next & np.isfinite(r1) & (opposite | back)
        quiet = (size[cand] > jump) & ~(np.abs(m) >= market_move)  # NaN: no market move seen

    reasons: dict[int, list[str]] = {}
    for k in np.flatnonzero(reverses | quiet):
        why = reasons.setdefault(int(cand[k]), [])
        if reverses[k]:
            kind = "reverses" if opposite[k] else "price back within tolerance"
            why.append(f"{kind} next day (next ret {fmt_pct(r1[k])})")
        if quiet[k]:
            market = "no market return" if np.isnan(m[k]) else f"mkt_excess {fmt_pct(m[k])}"
            why.append(f"no market move ({market})")
    n_reverting = 0
    if flag_reverting_day:
        for k in np.flatnonzero(reverses):
            j = int(nxt_i[k])
            if own[j]:
                n_reverting += 1
                why = reasons.setdefault(j, [])
                why.append(f"reverts the previous day's jump of {fmt_pct(r0[k])}")
    n_above = int(np.count_nonzero(size[cand] > jump))
    if not reasons:
        return CheckOutcome(
            name,
            True,
            "warn",
            0,
            f"no return reverses a jump above {reversal_jump:.0%} and no |ret| > {jump:.0%} "
            f"comes without a market move ({n_above} move(s) above {jump:.0%})",
        )

    idx = np.fromiter(reasons.keys(), dtype=np.int64, count=len(reasons))
    rows = pd.DataFrame(
        {
            "symbol": symbols[idx],
            "date": dates[idx],
            "value": ret[idx],
            "reason": ["; ".join(v) for v in reasons.values()],
        }
    ).sort_values(["date", "symbol"], kind="mergesort")
    n = len(rows)
    n_rev = int(reverses.sum())
    n_quiet = int((quiet & ~reverses).sum())
    first = rows.iloc[0]
    return CheckOutcome(
        name,
        False,
        "warn",
        n,
        f"{n} suspicious return(s) in {rows['symbol'].nunique()} symbol(s): {n_rev} jump(s) "
        f"> {reversal_jump:.0%} reversed the next day ({n_reverting} reverting day(s) listed "
        f"too), {n_quiet} more |ret| > {jump:.0%} without a market move "
        f"(first {first['symbol']} {fmt_date(first['date'])})",
        make_rows(rows, max_rows),
        n,
    )
