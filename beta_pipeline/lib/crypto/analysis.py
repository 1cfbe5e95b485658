"""Results of the crypto study from its long beta table: hedging RMSE per method,
descriptive statistics, annual trajectories, quartile sorts and the Fama-French add-on.

The long beta frame has ``month`` (the month the beta hedges), ``data_end`` (the last month
of data it uses = month - 1), ``coin, config, market, method, beta`` and ``split``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from beta_pipeline.lib import sorts
from beta_pipeline.lib.crypto.grid import GridPoint, TrainOptions, build_samples, config_markets

FF5: tuple[str, ...] = ("mkt_rf", "smb", "hml", "rmw", "cma")
NO_HEDGE = "zero"


def label_months(months: pd.Series | pd.DatetimeIndex, bounds: Mapping[str, object]) -> np.ndarray:
    """train / val / test / live label of hedged months from a split's bounds
    (``train_end``, ``val_end``, ``test_end`` as ``YYYY-MM``); months before the MLP's first
    target month count as train (they precede the validation span)."""
    m = pd.DatetimeIndex(pd.to_datetime(months))
    ends = {k: pd.Timestamp(str(bounds[f"{k}_end"])) for k in ("train", "val", "test")}
    return np.select(
        [m <= ends["train"], m <= ends["val"], m <= ends["test"]],
        ["train", "val", "test"],
        default="live",
    ).astype(object)


def hedge_errors(betas: pd.DataFrame, wide: pd.DataFrame) -> pd.DataFrame:
    """Hedging error ``y - sum_j beta_j x_j`` per (config, method, month, coin, split);
    only complete beta vectors (every market of the config) with a realised month."""
    long_x = wide.stack(future_stack=True).rename("x")
    long_x.index = long_x.index.set_names(["month", "market"])
    b = betas.join(long_x, on=["month", "market"])
    b["bx"] = b["beta"] * b["x"]
    keys = ["config", "method", "month", "coin", "split"]
    g = b.groupby(keys, sort=False).agg(hedge=("bx", "sum"), n=("bx", "count"))
    g = g.reset_index()
    need = g["config"].map(lambda c: len(config_markets(c)))
    g = g.loc[g["n"] == need]
    y = wide.stack(future_stack=True).rename("y")
    y.index = y.index.set_names(["month", "coin"])
    g = g.join(y, on=["month", "coin"]).dropna(subset=["y"])
    g["error"] = g["y"] - g["hedge"]
    return g.drop(columns="n").reset_index(drop=True)


def hedging_table(
    betas: pd.DataFrame, wide: pd.DataFrame, reference: str = "ols_36"
) -> pd.DataFrame:
    """RMSE of the next-month hedging error per config, method and split, on the rows where
    EVERY method has a beta (so methods are compared on the same months), with the no-hedge
    benchmark (``zero``) and the % improvement over ``reference``."""
    err = hedge_errors(betas, wide)
    rows = []
    for config, part in err.groupby("config", sort=False):
        methods = sorted(part["method"].unique())
        wide_err = part.pivot_table(
            index=["month", "coin", "split"], columns="method", values="error", aggfunc="first"
        )
        complete = wide_err.dropna().copy()
        y = part.drop_duplicates(["month", "coin"]).set_index(["month", "coin"])["y"]
        complete[NO_HEDGE] = y.reindex(complete.index.droplevel("split")).to_numpy()
        for split, block in complete.groupby(level="split"):
            months = block.index.get_level_values("month")
            for method in [*methods, NO_HEDGE]:
                e = block[method].to_numpy()
                rows.append(
                    {
                        "config": config,
                        "method": method,
                        "split": split,
                        "n": len(e),
                        "rmse": float(np.sqrt(np.mean(e**2))),
                        "first_month": months.min(),
                        "last_month": months.max(),
                    }
                )
    out = pd.DataFrame(rows)
    if out.empty:
        return out.assign(rmse_ref=[], improvement_pct=[], reference=[])
    ref = out.loc[out["method"] == reference].set_index(["config", "split"])["rmse"]
    out["rmse_ref"] = [ref.get((c, s), np.nan) for c, s in zip(out["config"], out["split"],
                                                                 strict=True)]
    out["improvement_pct"] = 100.0 * (1.0 - out["rmse"] / out["rmse_ref"])
    out["reference"] = reference
    return out


def beta_stats(betas: pd.DataFrame) -> pd.DataFrame:
    """N, mean, std (ddof 1), skew, kurtosis (Pearson's: 3 for a normal; population
    moments, as the report), min, max per config x method x coin x market, over every
    realised month (``sample = 'all'``) and over the test months (``'test'``)."""
    realised = betas.loc[betas["split"] != "live"]
    parts = [realised.assign(sample="all"), realised.loc[realised["split"] == "test"].assign(
        sample="test"
    )]
    data = pd.concat(parts, ignore_index=True).dropna(subset=["beta"])
    keys = ["config", "method", "coin", "market", "sample"]

    def moments(b: pd.Series) -> pd.Series:
        v = b.to_numpy(dtype=float)
        one = len(v) < 2 or np.ptp(v) == 0
        return pd.Series(
            {
                "n": len(v),
                "mean": v.mean(),
                "std": v.std(ddof=1) if len(v) > 1 else np.nan,
                "skew": np.nan if one else float(stats.skew(v, bias=True)),
                "kurtosis": np.nan if one else float(stats.kurtosis(v, fisher=False, bias=True)),
                "min": v.min(),
                "max": v.max(),
            }
        )

    out = data.groupby(keys, sort=True)["beta"].apply(moments).unstack().reset_index()
    out["n"] = out["n"].astype("int64")
    return out


def annual_betas(betas: pd.DataFrame) -> pd.DataFrame:
    """Mean beta per calendar year of the hedged month, config, method, coin and market."""
    data = betas.loc[betas["split"] != "live"].dropna(subset=["beta"])
    data = data.assign(year=pd.DatetimeIndex(data["month"]).year)
    out = (
        data.groupby(["year", "config", "method", "coin", "market"], sort=True)["beta"]
        .agg(mean_beta="mean", n="size")
        .reset_index()
    )
    out["year"] = out["year"].astype("int64")
    return out


def excess_returns(wide_ret: pd.DataFrame, coins: Sequence[str], rf: pd.Series) -> pd.DataFrame:
    """Long ``month, symbol, ret_excess`` of the coins: simple return minus rf."""
    simple = np.expm1(wide_ret.loc[:, list(coins)])
    ex = simple.sub(rf.reindex(simple.index), axis=0)
    out = ex.stack().rename("ret_excess").reset_index()
    out.columns = ["month", "symbol", "ret_excess"]
    return out


def quartile_sorts(
    betas: pd.DataFrame, excess: pd.DataFrame, n_portfolios: int = 4
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each month, coins sorted into beta quartiles on their betas for the next month (the
    single-market configurations, every method), with the portfolio's mean beta and its
    next-month equal-weighted excess return, plus high-minus-low (``quartile = 'HML'``).

    Reuses :func:`beta_pipeline.lib.sorts.form_portfolios` / ``portfolio_returns`` (quantile
    breakpoints: four coins give one coin per quartile). Returns (rows, skipped)."""
    single = betas.loc[betas["config"] == betas["market"]]
    signals = pd.DataFrame(
        {
            "formation_month": single["data_end"],
            "estimator": single["config"] + "|" + single["method"],
            "symbol": single["coin"],
            "beta": single["beta"],
        }
    )
    members, skipped = sorts.form_portfolios(signals, n_portfolios=n_portfolios)
    rows, skipped_r = sorts.portfolio_returns(members, excess)
    rows = rows.loc[rows["weighting"] == "ew"]
    split = single.drop_duplicates(["month"]).set_index("month")["split"]
    parts = rows["estimator"].str.split("|", n=1, expand=True)
    out = pd.DataFrame(
        {
            "month": pd.to_datetime(rows["month"]),
            "data_end": pd.to_datetime(rows["formation_month"]),
            "config": parts[0],
            "method": parts[1],
            "quartile": rows["portfolio"].astype(str),
            "n": rows["n"].astype("int64"),
            "mean_beta": rows["mean_beta"],
            "excess_return": rows["ret_excess"],
        }
    )
    out["split"] = out["month"].map(split).fillna("train")
    skipped_all = [f for f in (skipped, skipped_r) if len(f)]
    skipped_out = (
        pd.concat(skipped_all, ignore_index=True) if skipped_all else skipped.iloc[0:0]
    )
    return out.reset_index(drop=True), skipped_out


def quartile_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Time-series means of the quartile rows per config, method, sample and quartile."""
    parts = [rows.assign(sample="all"), rows.loc[rows["split"] == "test"].assign(sample="test")]
    data = pd.concat(parts, ignore_index=True)
    return (
        data.groupby(["config", "method", "sample", "quartile"], sort=True)
        .agg(months=("excess_return", "count"), mean_beta=("mean_beta", "mean"),
             excess_return=("excess_return", "mean"))
        .reset_index()
    )


def factor_frame(factors: pd.DataFrame, names: Sequence[str] = FF5) -> pd.DataFrame:
    """Months x factors (decimals) from a long (month, series, value) frame; the factors
    the source has (the yfinance source has only ``mkt_rf``)."""
    have = factors.loc[factors["series"].isin(list(names))]
    if have.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="month"))
    wide = have.pivot_table(index="month", columns="series", values="value", aggfunc="first")
    wide.columns.name = None
    return wide.loc[:, [n for n in names if n in wide.columns]].sort_index()


def ff5_addon(
    wide: pd.DataFrame,
    factors: pd.DataFrame,
    coins: Sequence[str],
    best: Mapping[str, GridPoint],
    options: TrainOptions,
) -> pd.DataFrame:
    """Out-of-sample RMSE of each configuration's best MLP with and without the factors as
    extra inputs (their last ``window`` months beside the returns).

    Both models run on the SAME sample: formation months up to the factors' last month
    (the factor files may end before the crypto data), split by time with the same shares,
    same hyperparameters, same seeds; ``change_pct`` = 100 (RMSE_ff5 / RMSE_base - 1) on
    the test months (negative = the factors help)."""
    from beta_pipeline.lib.crypto import model  # torch, only when training

    if factors.empty:
        return pd.DataFrame()
    last = factors.dropna().index.max()
    sample = wide.loc[: last + pd.offsets.MonthBegin(1)]
    rows = []
    for config, point in best.items():
        markets = config_markets(config)
        fits = {}
        for label, extra in (("base", None), ("ff5", factors)):
            # both on months up to the factors' last + 1: same targets, same split (the
            # base model's one extra sample per coin, formed in last + 1, is 'live')
            s = build_samples(sample, coins, markets, options, extra=extra)
            fits[label] = model.fit_grid(s, [point], options, config)
        base, ff = fits["base"], fits["ff5"]
        rows.append(
            {
                "config": config,
                "hidden": point.hidden,
                "lr": point.lr,
                "activation": point.activation,
                "factors": ",".join(factors.columns),
                "factors_end": f"{last:%Y-%m}",
                "test_start": base.samples.bounds["test_start"],
                "test_end": base.samples.bounds["test_end"],
                "n_test": int(base.samples.mask("test").sum()),
                "val_rmse_base": float(base.rmse("val")[0]),
                "val_rmse_ff5": float(ff.rmse("val")[0]),
                "test_rmse_base": float(base.rmse("test")[0]),
                "test_rmse_ff5": float(ff.rmse("test")[0]),
            }
        )
    out = pd.DataFrame(rows)
    out["change_pct"] = 100.0 * (out["test_rmse_ff5"] / out["test_rmse_base"] - 1.0)
    return out
