"""NeuralBeta: synthetic scenarios, baselines, the Kalman study, model training (experiment x
model partitions), evaluation with Table 1 and figures, and daily market betas/NBI weights."""

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd

from beta_pipeline.defs.partitions import DUCKDB_POOL, session_partitions
from beta_pipeline.defs.quality.model_checks import window_ols_rmse
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.util import (
    materialize_result,
    partition_label,
    plot_entries,
    png_metadata,
    preview,
    window,
)
from beta_pipeline.lib import neuralbeta_eval as E
from beta_pipeline.lib import neuralbeta_market as M
from beta_pipeline.lib import neuralbeta_store as store
from beta_pipeline.lib import synthetic as S
from beta_pipeline.lib import warehouse
from beta_pipeline.lib import window_baselines as B
from beta_pipeline.lib.errors import DataValidationError

if TYPE_CHECKING:  # torch and lightning load only where a model is trained or run
    from beta_pipeline.lib.nn import NeuralBetaDataModule

SYNTHETIC_GROUP = "synthetic"
GROUP = "neuralbeta"
SCENARIO_KEYS = [*E.SYNTHETIC_EXPERIMENTS, "kalman_step"]

scenario_partitions = dg.StaticPartitionsDefinition(SCENARIO_KEYS)
baseline_partitions = dg.StaticPartitionsDefinition(list(E.SYNTHETIC_EXPERIMENTS))
model_partitions = dg.MultiPartitionsDefinition(
    {
        "experiment": dg.StaticPartitionsDefinition(list(E.EXPERIMENTS)),
        "model": dg.StaticPartitionsDefinition(list(E.MODELS)),
    }
)
#: Weekday rows read before a partition so that its first day has a full window (the
#: paper's longest lookback, 256 days, plus holidays).
LOOKBACK_WEEKDAYS = 300


def _scenario_path(artifacts: ArtifactStore, scenario: str, part: str = "") -> str:
    return str(artifacts.path("synthetic", f"{scenario}{part}.parquet"))


def _quoted(path: str) -> str:
    """A file path as a SQL string literal (DDL of a view cannot take parameters)."""
    return "'" + path.replace("'", "''") + "'"


class SyntheticConfig(dg.Config):
    """Size and seed of the synthetic scenarios (METHODS §4)."""

    n_samples: int = 100_000
    independent_test_samples: int = 50_000
    seed: int = 0
    window: int = 64


@dg.asset(
    partitions_def=scenario_partitions,
    pool=DUCKDB_POOL,
    kinds={"numpy", "parquet", "duckdb"},
    group_name=SYNTHETIC_GROUP,
    description="Seeded synthetic scenarios of the NeuralBeta paper as Parquet with DuckDB views.",
)
def synthetic_scenarios(
    context: dg.AssetExecutionContext,
    config: SyntheticConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """constant/stepwise/cyclical: ``n_samples`` windows (70/20/10 split) plus an independent
    test set (seed + 1); kalman_step: the 1,000-step series of the Kalman study."""
    from beta_pipeline.lib import neuralbeta_plots as P
    scenario = context.partition_key
    views: dict[str, str] = {}
    meta: dict[str, object] = {"seed": config.seed}
    if scenario == "kalman_step":
        s = S.kalman_step(seed=config.seed)
        frame = pd.DataFrame({"step": np.arange(len(s.x)), "x": s.x, "y": s.y, "beta": s.beta})
        path = _scenario_path(artifacts, scenario)
        frame.to_parquet(path, index=False)
        views["kalman_step"] = path
        meta.update({"dagster/row_count": len(frame), "preview": preview(frame)})
        png = P.kalman_study_plot(E.kalman_study(seed=config.seed)[0])
    else:
        data = S.generate(scenario, n=config.n_samples, h=config.window, seed=config.seed)
        views[scenario] = str(S.save_parquet(data, _scenario_path(artifacts, scenario)))
        stale = artifacts.path("synthetic", f"{scenario}_independent.parquet")
        if not config.independent_test_samples and stale.exists():
            stale.unlink()  # never evaluate on an independent set of an older config
            with warehouse_db.writer() as conn:
                conn.execute(f"DROP VIEW IF EXISTS synthetic.{scenario}_independent")
        if config.independent_test_samples:
            extra = S.generate(
                scenario, n=config.independent_test_samples, h=config.window, seed=config.seed + 1
            )
            views[f"{scenario}_independent"] = str(
                S.save_parquet(extra, _scenario_path(artifacts, scenario, "_independent"))
            )
        meta.update(
            {
                "dagster/row_count": data.n,
                "window": data.window,
                "split": "70/20/10 train/val/test in sample order",
                "preview": preview(S.to_frame(data.subset(slice(0, 5))).iloc[:, :8]),
            }
        )
        png = P.scenario_examples(data.beta, scenario)
    with warehouse_db.writer() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS synthetic")
        for name, path in views.items():
            conn.execute(
                f"CREATE OR REPLACE VIEW synthetic.{name} AS "
                f"SELECT * FROM read_parquet({_quoted(path)})"
            )
    artifacts.path("plots", f"synthetic_{scenario}.png").write_bytes(png)
    meta["files"] = dg.MetadataValue.json(views)
    meta["plot"] = png_metadata(png, scenario)
    return dg.MaterializeResult(metadata=meta)


def _load_scenario(artifacts: ArtifactStore, scenario: str, part: str = "") -> S.SyntheticData:
    path = artifacts.path("synthetic", f"{scenario}{part}.parquet")
    if not path.exists():
        raise dg.Failure(f"{path} is missing: materialize synthetic_scenarios[{scenario}] first")
    return S.load_parquet(path)


def _test_sets(artifacts: ArtifactStore, scenario: str) -> dict[str, S.SyntheticData]:
    data = _load_scenario(artifacts, scenario)
    sets = {"split": data.split()["test"]}
    if artifacts.path("synthetic", f"{scenario}_independent.parquet").exists():
        sets["independent"] = _load_scenario(artifacts, scenario, "_independent")
    return sets


@dg.asset(
    partitions_def=baseline_partitions,
    deps=[
        dg.AssetDep(
            "synthetic_scenarios",
            partition_mapping=dg.StaticPartitionMapping({s: s for s in E.SYNTHETIC_EXPERIMENTS}),
        )
    ],
    pool=DUCKDB_POOL,
    kinds={"numpy", "statsmodels", "duckdb"},
    group_name=SYNTHETIC_GROUP,
    description="OLS, tuned EW-WLS, Kalman, Bayes and oracle betas on the synthetic test sets.",
)
def synthetic_baselines(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    """RMSE(y), RMSE(beta), % improvement over OLS and oracle-gap share of every baseline on
    the 10 % test split and the independent test set -> ``neuralbeta.baselines``."""
    scenario = context.partition_key
    data = _load_scenario(artifacts, scenario)
    parts = data.split()
    rows = []
    params: dict[str, object] = {}
    for test_set, test in _test_sets(artifacts, scenario).items():
        betas, params = E.synthetic_baselines(scenario, parts["train"], parts["val"], test)
        _, _, xn, yn, bn = test.windows()
        frame = E.metric_rows(scenario, betas, xn, yn, bn).rename(columns={"model": "estimator"})
        frame["test_set"] = test_set
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    out["params"] = json.dumps(params, default=float)
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.baselines", out, {"experiment": scenario})
    shown = out.drop(columns=["params", "experiment"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(out),
            "wls_half_life": float(params["wls_half_life"]),
            "kalman": dg.MetadataValue.json(params.get("kalman", {})),
            "baselines": preview(shown, rows=20),
        }
    )


class KalmanStudyConfig(dg.Config):
    """Monte Carlo of the Kalman study (METHODS §4, kalman_step)."""

    seeds: int = 200
    burn_in: int = 50
    window: int = 30


@dg.asset(
    deps=[
        dg.AssetDep(
            "synthetic_scenarios",
            partition_mapping=dg.SpecificPartitionsPartitionMapping(["kalman_step"]),
        )
    ],
    pool=DUCKDB_POOL,
    kinds={"statsmodels", "duckdb"},
    group_name=SYNTHETIC_GROUP,
    description="Kalman filter vs entire-period and rolling-30 OLS on kalman_step over many seeds.",
)
def kalman_study(
    context: dg.AssetExecutionContext,
    config: KalmanStudyConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """Per seed: MLE random-walk Kalman filter, entire-period OLS and rolling OLS; the MSE of
    beta after burn-in and over the 60 steps after the break -> ``neuralbeta.kalman_study``."""
    from beta_pipeline.lib import neuralbeta_plots as P
    if config.window != 30:
        raise dg.Failure("the kalman_study table stores the rolling-30 column; keep window=30")
    mc = E.kalman_monte_carlo(range(config.seeds), burn_in=config.burn_in, window=config.window)
    summary = E.kalman_summary(mc, config.window)
    example, _ = E.kalman_study(seed=0, window=config.window)
    png = P.kalman_study_plot(example, config.window)
    artifacts.path("plots", "kalman_study.png").write_bytes(png)
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.kalman_study", mc, {})
    context.log.info(f"Kalman study: {summary}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(mc),
            **{k: float(v) for k, v in summary.items()},
            "plot": png_metadata(png, "kalman study"),
        }
    )


class NeuralBetaModelConfig(dg.Config):
    """Training budget and data split of one NeuralBeta model."""

    budget: str = "quick"
    """quick (CPU, minutes), paper (100,000 updates; for a GPU) or tiny (tests)."""
    seed: int = 0
    threads: int = 1
    """torch CPU threads (1: other steps may run at the same time)."""
    accelerator: str = "auto"
    max_steps: int | None = None
    """Override the budget's number of updates."""
    window: int = 64
    data_end: str | None = None
    """Market experiments: use returns up to this date only (walk-forward retraining)."""
    train_end: str | None = None
    """Market experiments: last target date of the training split (default: 8/14 of dates)."""
    val_end: str | None = None
    """Market experiments: last target date of the validation split (default: 10/14)."""
    progress: bool = False


def _read_market(
    conn, end: pd.Timestamp | None = None, start: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    returns = warehouse.read_window(
        conn, "returns.daily", start, end, columns=["date", "symbol", "ret_excess", "mkt_excess"]
    )
    market = warehouse.read_window(
        conn, "raw.market", start, end, columns=["date", "series", "value"]
    )
    return returns, market


def _market_datamodule(
    warehouse_db: DuckDBWarehouse, experiment: str, cfg: NeuralBetaModelConfig
) -> tuple["NeuralBetaDataModule", list[str], str]:
    from beta_pipeline.lib.nn import NeuralBetaDataModule
    end = pd.Timestamp(cfg.data_end) + pd.Timedelta(days=1) if cfg.data_end else None
    with warehouse_db.reader() as conn:
        returns, market = _read_market(conn, end)
    y, x, desc = M.market_panel(returns, market, experiment)
    dm = NeuralBetaDataModule.from_market(y, x, cfg.window, cfg.train_end, cfg.val_end)
    return dm, list(x.columns), desc


def _split_end(data) -> pd.Timestamp | None:
    keys = data.keys() if hasattr(data, "keys") and len(data) else None
    return None if keys is None else pd.Timestamp(keys["date"].max())


def _write_with_retry(warehouse_db: DuckDBWarehouse, write, timeout_s: float = 600.0) -> None:
    """Run ``write(conn)`` in one writer connection, waiting (the shared lock retry of
    :meth:`DuckDBWarehouse.writer`, at least ``timeout_s``) while another process, say a
    ``beta-pipeline query`` reader, holds the DuckDB file: a long training must not be lost
    to a lock at its very end."""
    wait = max(timeout_s, warehouse_db.lock_timeout())
    with warehouse_db.writer(timeout_s=wait) as conn:
        write(conn)


@dg.asset(
    partitions_def=model_partitions,
    deps=[
        # one scenario per synthetic experiment; Dagster cannot map an experiment x model key
        # onto a static partition set that lacks the market experiments, so: all scenarios
        dg.AssetDep("synthetic_scenarios", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("daily_returns", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("raw_market", partition_mapping=dg.AllPartitionMapping()),
    ],
    pool=DUCKDB_POOL,
    kinds={"pytorch", "lightning", "duckdb"},
    group_name=GROUP,
    description="Train one NeuralBeta model (NB/NBI, GRU/attention) for one experiment.",
)
def neuralbeta_model(
    context: dg.AssetExecutionContext,
    config: NeuralBetaModelConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """Synthetic experiments train on the scenario's 70 % split and validate on its 20 %;
    market experiments train jointly on all stocks with a time split (8/2/4 of the dates).
    The best-validation checkpoint goes under ``artifacts/neuralbeta/`` and the run (split
    dates, budget, timings) into ``neuralbeta.runs`` / ``neuralbeta.history``."""
    import torch

    from beta_pipeline.lib import neuralbeta_plots as P
    from beta_pipeline.lib.nn import NeuralBetaConfig, NeuralBetaDataModule, train
    from beta_pipeline.lib.nn.config import get_budget

    keys = context.partition_key.keys_by_dimension
    experiment, model = keys["experiment"], keys["model"]
    torch.set_num_threads(max(config.threads, 1))
    budget = get_budget(config.budget)
    if config.max_steps:
        budget = dataclasses.replace(budget, max_steps=config.max_steps)
    run_id = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    out_dir = artifacts.path("neuralbeta", experiment, model, run_id, "best.ckpt").parent
    split: dict[str, object] = {}
    if experiment in E.SYNTHETIC_EXPERIMENTS:
        data = _load_scenario(artifacts, experiment)
        dm = NeuralBetaDataModule.from_synthetic(data)
        factors, desc = ["x"], f"synthetic {experiment}"
    else:
        dm, factors, desc = _market_datamodule(warehouse_db, experiment, config)
        split = {
            "train_end": _split_end(dm.train_set),
            "val_end": _split_end(dm.val_set),
            "trained_through": _split_end(dm.val_set),
        }
        if not len(dm.train_set) or not len(dm.val_set):
            raise dg.Failure(f"{experiment}: empty training or validation split ({split})")
    window_len = data.window if experiment in E.SYNTHETIC_EXPERIMENTS else config.window
    cfg = NeuralBetaConfig.preset(model, d=len(factors), window=window_len)
    context.log.info(
        f"training {experiment}/{model} ({desc}): {len(dm.train_set):,} train / "
        f"{len(dm.val_set):,} val windows, budget {budget.name} ({budget.max_steps} updates)"
    )
    res = train(
        cfg,
        dm,
        budget,
        seed=config.seed,
        out_dir=out_dir,
        accelerator=config.accelerator,
        progress=config.progress,
    )
    hist = pd.DataFrame(res.history)
    corr = (
        float(hist[["rmse_y", "rmse_beta"]].corr().iloc[0, 1])
        if len(hist) > 2 and "rmse_beta" in hist and hist["rmse_beta"].notna().all()
        else float("nan")
    )
    run = {
        "run_id": run_id,
        "experiment": experiment,
        "model": model,
        "budget": budget.name,
        "seed": config.seed,
        "config": json.dumps({"model": res.config, "budget": res.budget}, default=str),
        "checkpoint": res.checkpoint_path,
        "n_train": len(dm.train_set),
        "n_val": len(dm.val_set),
        "n_test": len(dm.test_set) if dm.test_set is not None else 0,
        "train_end": split.get("train_end"),
        "val_end": split.get("val_end"),
        "trained_through": split.get("trained_through"),
        "factors": ",".join(factors),
        "best_step": res.best_step,
        "best_val_loss": res.best_val_loss,
        "steps": res.steps,
        "seconds": res.seconds,
        "cpu_seconds": res.cpu_seconds,
        "device": str(next(res.system.parameters()).device),
        "created_at": pd.Timestamp.now(),
    }
    history = hist.rename(columns={"loss": "val_loss"}).assign(
        run_id=run_id, experiment=experiment, model=model
    )
    for col in ("val_loss", "rmse_y", "rmse_beta"):
        if col not in history:
            history[col] = np.nan

    def write(conn) -> None:
        warehouse.replace_keys(conn, "neuralbeta.runs", pd.DataFrame([run]), {"run_id": run_id})
        warehouse.replace_keys(conn, "neuralbeta.history", history, {"run_id": run_id})

    _write_with_retry(warehouse_db, write)
    png = P.fig5_history(history)
    artifacts.path("plots", f"neuralbeta_history_{experiment}_{model}.png").write_bytes(png)
    return dg.MaterializeResult(
        metadata={
            "run_id": run_id,
            "checkpoint": res.checkpoint_path,
            "best_step": res.best_step,
            "best_val_loss": float(res.best_val_loss),
            "train_seconds": round(res.seconds, 1),
            "cpu_seconds": round(res.cpu_seconds, 1),
            "train_windows": len(dm.train_set),
            "factors": ", ".join(factors),
            "corr_rmse_y_rmse_beta": corr,
            # the baseline of the neuralbeta_model_sanity check (defs/quality/model_checks.py)
            "ols_val_rmse_y": window_ols_rmse(dm.val_set),
            **{k: str(pd.Timestamp(v).date()) for k, v in split.items() if v is not None},
            "history": png_metadata(png, "validation history"),
        }
    )


# ------------------------------------------------------------------------- evaluation


def _synthetic_model_rows(
    runs: pd.DataFrame, artifacts: ArtifactStore
) -> tuple[list[pd.DataFrame], dict[str, dict[str, object]]]:
    """Metric rows of every synthetic model on each test set; the loaded systems."""
    from beta_pipeline.lib.nn import load_system, predict

    rows: list[pd.DataFrame] = []
    systems: dict[str, dict[str, object]] = {}
    for experiment, part in runs.groupby("experiment"):
        tests = _test_sets(artifacts, experiment)
        for run in part.itertuples():
            system = load_system(run.checkpoint)
            systems.setdefault(experiment, {})[run.model] = system
            for test_set, test in tests.items():
                x, y, xn, yn, bn = test.windows()
                beta, _ = predict(system, x, y)
                betas = {"ols": B.ols_beta(x, y), "oracle": B.oracle_beta(bn), run.model: beta}
                frame = E.metric_rows(experiment, betas, xn, yn, bn)
                frame = frame[frame["model"] == run.model].assign(
                    test_set=test_set, run_id=run.run_id
                )
                rows.append(frame)
    return rows, systems


def _market_model_rows(
    runs: pd.DataFrame, warehouse_db: DuckDBWarehouse
) -> tuple[
    list[pd.DataFrame], dict[str, pd.DataFrame], dict[str, tuple[np.ndarray, pd.Series, pd.Series]]
]:
    """Test-span metric rows of the market models with OLS / tuned EW-WLS on the same
    windows, the baselines' rows and (for NBI models) weights for Figs. 7-8."""
    import torch

    from beta_pipeline.lib.nn import NeuralBetaDataModule, load_system, predict

    rows: list[pd.DataFrame] = []
    base_rows: dict[str, pd.DataFrame] = {}
    weights: dict[str, tuple[np.ndarray, pd.Series, pd.Series]] = {}
    with warehouse_db.reader() as conn:
        returns, market = _read_market(conn)
    for experiment, part in runs.groupby("experiment"):
        y, x, _ = M.market_panel(returns, market, experiment)
        for run in part.itertuples():
            cfg = json.loads(run.config)["model"]
            sets = NeuralBetaDataModule.from_market(
                y, x, int(cfg["window"]), run.train_end, run.val_end
            )
            val, test = sets.val_set, sets.test_set
            if test is None or not len(test):
                continue
            vb, tb = val[torch.arange(len(val))], test[torch.arange(len(test))]
            xv, yv = vb["x"].double().numpy(), vb["y"].double().numpy()
            x_t, y_t = tb["x"].double().numpy(), tb["y"].double().numpy()
            xn, yn = tb["x_next"].double().numpy(), tb["y_next"].double().numpy()
            xnv, ynv = vb["x_next"].double().numpy(), vb["y_next"].double().numpy()
            betas, params = E.market_baselines((xv, yv, xnv, ynv), (x_t, y_t))
            system = load_system(run.checkpoint)
            beta, w = predict(system, x_t, y_t)
            betas[run.model] = beta
            frame = E.metric_rows(experiment, betas, xn, yn).assign(
                test_set="test", run_id=run.run_id
            )
            rows.append(frame[frame["model"] == run.model])
            base = frame[frame["model"].isin(["ols", "wls"])].copy()
            base["params"] = json.dumps(params, default=float)
            base_rows[experiment] = base
            if w is not None:
                weights[f"{experiment}/{run.model}"] = (w, _window_end_dates(test), x["mkt_excess"])
    return rows, base_rows, weights


def _window_end_dates(data) -> pd.Series:
    """Last input date of each window of a market split (the day the beta is dated)."""
    return pd.Series(data.dates[data.last.numpy()])


def _fig3(experiment: str, systems: dict[str, object], half_life: float) -> bytes:
    from beta_pipeline.lib import neuralbeta_plots as P
    from beta_pipeline.lib.nn import predict

    path = E.example_path(experiment)
    h = next(iter(systems.values())).cfg.window
    xs, ys = E.sliding_windows(path.x[0], path.y[0], h)
    xs, ys = xs[:-1], ys[:-1]  # the last window has no next step to hedge
    est = {
        "OLS": B.ols_beta(xs, ys)[:, 0],
        f"WLS (half-life {half_life:g})": B.ewls_beta(xs, ys, half_life)[:, 0],
    }
    for name, system in systems.items():
        est[name] = predict(system, xs, ys)[0][:, 0]
    return P.fig3_paths(path.beta[0, :, 0], est, experiment)


def _fig4(
    systems: dict[str, object], half_life: float, n: int = 2000
) -> tuple[pd.DataFrame, bytes]:
    from beta_pipeline.lib import neuralbeta_plots as P
    from beta_pipeline.lib.nn import predict

    rows = []
    for k in range(4, 40, 3):
        data = E.cyclical_fixed_period(float(k), n, seed=1000 + k)
        x, y, xn, yn, _ = data.windows()
        betas = {"ols": B.ols_beta(x, y), "wls": B.ewls_beta(x, y, half_life)}
        for name, system in systems.items():
            betas[name] = predict(system, x, y)[0]
        ols = B.rmse_y(betas["ols"], xn, yn)
        for name, beta in betas.items():
            if name != "ols":
                rows.append(
                    {
                        "k": k,
                        "period": 2 * np.pi * k,
                        "model": name,
                        "improvement_vs_ols_pct": B.improvement_pct(B.rmse_y(beta, xn, yn), ols),
                    }
                )
    curve = pd.DataFrame(rows)
    return curve, P.fig4_period_curve(curve)


def _fig6(system: object, model: str) -> bytes:
    from beta_pipeline.lib import neuralbeta_plots as P
    from beta_pipeline.lib.nn import predict

    probe = S.jump_probe(n_per_position=1000, seed=2)
    x, y, *_ = probe.windows()
    _, w = predict(system, x, y)
    pos = probe.meta["jump"]
    profiles = {int(k): w[pos == k].mean(0) for k in np.unique(pos)}
    return P.fig6_probe(profiles, f"Fig. 6 ({model} trained on stepwise): weights, beta 2 -> 0")


@dg.asset(
    deps=[
        dg.AssetDep("neuralbeta_model", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("synthetic_baselines", partition_mapping=dg.AllPartitionMapping()),
    ],
    pool=DUCKDB_POOL,
    kinds={"pytorch", "duckdb"},
    group_name=GROUP,
    description="Table 1 (ours beside the paper's) and Figs. 3-8 from the latest trained models.",
    output_required=False,
)
def neuralbeta_evaluation(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, warehouse_db: DuckDBWarehouse
):
    """Evaluates the newest run of every (experiment, model) on its test set(s) beside the
    baselines -> ``neuralbeta.evaluation``; Table 1 as Markdown; figures as PNG. With no
    trained model yet (e.g. an analytics run before any training) nothing is materialized
    and a warning says so: the previous evaluation stays as it was."""
    from beta_pipeline.lib import neuralbeta_plots as P

    with warehouse_db.reader() as conn:
        runs = (
            store.latest_runs(conn)
            if store.table_exists(conn, "neuralbeta.runs")
            else pd.DataFrame(columns=store.RUNS.column_names)
        )
        baselines = conn.execute("SELECT * FROM neuralbeta.baselines").df()
        history = conn.execute(
            "SELECT * FROM neuralbeta.history WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY experiment, model, step",
            [list(runs["run_id"])],
        ).df()
    if runs.empty:
        context.log.warning(
            "neuralbeta_evaluation: no trained NeuralBeta model with a test split yet; "
            "materialize neuralbeta_model first (nothing evaluated)"
        )
        return
    syn_runs = runs[runs["experiment"].isin(E.SYNTHETIC_EXPERIMENTS)]
    mkt_runs = runs[runs["experiment"].isin(E.MARKET_EXPERIMENTS)]
    rows, systems = _synthetic_model_rows(syn_runs, artifacts)
    m_rows, m_base, m_weights = _market_model_rows(mkt_runs, warehouse_db)
    rows += m_rows
    base = baselines.rename(columns={"estimator": "model"})
    base = pd.concat([base, *m_base.values()], ignore_index=True) if m_base else base
    evaluation = pd.concat([*rows, base.assign(run_id=None)], ignore_index=True)
    corr = (
        history.groupby("run_id")[["rmse_y", "rmse_beta"]]
        .apply(lambda g: g.corr().iloc[0, 1] if len(g) > 2 else np.nan)
        .rename("corr_rmse_y_rmse_beta")
    )
    evaluation = evaluation.merge(corr, left_on="run_id", right_index=True, how="left")
    evaluation["paper_improvement_pct"] = [
        E.PAPER_TABLE1.get(e, {}).get(m)
        for e, m in zip(evaluation["experiment"], evaluation["model"], strict=True)
    ]
    evaluation["paper_improvement_pct"] = evaluation["paper_improvement_pct"].astype(float)
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.evaluation", evaluation, {})
    headline = evaluation[evaluation["test_set"].isin(["split", "test"])]
    t1 = E.table1(headline)
    md = t1.reset_index().to_markdown(index=False)
    artifacts.path("neuralbeta", "table1.md").write_text(md + "\n")
    meta: dict[str, object] = {
        "dagster/row_count": len(evaluation),
        "table1": dg.MetadataValue.md(
            "% RMSE(y) improvement over OLS, ours (paper); synthetic: the 10 % test split\n\n" + md
        ),
        "evaluation": preview(
            evaluation.drop(columns=["run_id", "params"], errors="ignore").sort_values(
                ["experiment", "test_set", "rmse_y"]
            ),
            rows=60,
        ),
    }
    figures: dict[str, bytes] = {}
    for experiment, models in systems.items():
        hl_rows = baselines[
            (baselines["experiment"] == experiment) & (baselines["estimator"] == "wls")
        ]
        hl = float(json.loads(hl_rows["params"].iloc[0])["wls_half_life"]) if len(hl_rows) else 4.0
        figures[f"fig3_{experiment}"] = _fig3(experiment, models, hl)
        if experiment == "cyclical":
            curve, figures["fig4_cyclical_period"] = _fig4(models, hl)
            meta["fig4_curve"] = preview(curve.round(2), rows=60)
        if experiment == "stepwise":
            for model, system in models.items():
                if model.endswith("nbi"):
                    figures[f"fig6_{model}"] = _fig6(system, model)
    if len(history):
        figures["fig5_history"] = P.fig5_history(history)
    for name, (w, dates, mkt) in m_weights.items():
        calm, wild, labels, scatter = E.nbi_weight_profiles(w, dates, mkt)
        tag = name.replace("/", "_")
        figures[f"fig7_{tag}"] = P.fig7_lag_weights(calm, wild, labels)
        figures[f"fig8_{tag}"] = P.fig8_weight_vs_vol(scatter)
        meta[f"fig8_corr_{tag}"] = float(
            scatter[["market_vol_5d", "recent_weight_share"]].corr().iloc[0, 1]
        )
    for name, png in figures.items():
        meta.update(plot_entries(name, png, artifacts.path("plots", f"neuralbeta_{name}.png")))
    yield dg.MaterializeResult(metadata=meta)


# ----------------------------------------------------------------- daily market betas


class NeuralBetaBetasConfig(dg.Config):
    """Which market models write daily betas (and NBI weights)."""

    experiments: list[str] = list(E.MARKET_EXPERIMENTS)
    models: list[str] = list(E.MODELS)
    weights: bool = True


def _assign_runs(dates: pd.Series, runs: pd.DataFrame) -> np.ndarray:
    """Per date, the index (into ``runs``, sorted by trained_through) of the newest run
    trained strictly on data up to that date, or -1 (no model yet)."""
    through = pd.to_datetime(runs["trained_through"]).to_numpy(dtype="datetime64[ns]")
    d = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]")
    return np.searchsorted(through, d, side="right") - 1


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "neuralbeta_betas",
            deps=[
                dg.AssetDep("neuralbeta_model", partition_mapping=dg.AllPartitionMapping()),
                "daily_returns",
                "raw_market",
            ],
            kinds={"pytorch", "duckdb"},
            group_name=GROUP,
            description="Daily NeuralBeta betas from the newest model trained before the date.",
        ),
        dg.AssetSpec(
            "nbi_weights",
            deps=[dg.AssetDep("neuralbeta_model", partition_mapping=dg.AllPartitionMapping())],
            kinds={"pytorch", "duckdb"},
            group_name=GROUP,
            description="Per-lag NBI weights behind each daily NeuralBeta-Interpretable beta.",
        ),
    ],
    partitions_def=session_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
)
def neuralbeta_betas(
    context: dg.AssetExecutionContext,
    config: NeuralBetaBetasConfig,
    warehouse_db: DuckDBWarehouse,
):
    """For every date of the run's window and every market model: the beta dated t (inputs
    t-63..t, hedging t+1) from the newest run whose training and validation data end on or
    before t -> ``neuralbeta.betas``; NBI weights -> ``neuralbeta.weights``."""
    from beta_pipeline.lib.nn import load_system, predict

    start, end = window(context)
    label = partition_label(start, end)
    read_from = start - pd.offsets.BDay(LOOKBACK_WEEKDAYS)
    with warehouse_db.reader() as conn:
        if not store.table_exists(conn, "neuralbeta.runs"):
            raise dg.Failure("no NeuralBeta model yet: materialize neuralbeta_model first")
        runs = store.market_runs(conn, config.experiments)
        runs = runs[runs["model"].isin(config.models) & runs["trained_through"].notna()]
        returns, market = _read_market(conn, end, read_from)
    if runs.empty:
        raise dg.Failure(
            "no trained market NeuralBeta model: materialize neuralbeta_model for "
            "experiment univariate or multivariate first"
        )
    beta_rows, weight_rows, skipped, used = [], [], 0, []
    short_history, skipped_experiments = 0, []
    for experiment, exp_runs in runs.groupby("experiment"):
        try:
            y, x, _ = M.market_panel(returns, market, experiment)
        except DataValidationError as err:  # e.g. no size/value factor on these dates
            context.log.warning(f"{experiment}: skipped for {label}: {err}")
            skipped_experiments.append(experiment)
            continue
        in_range = np.flatnonzero((y.index >= start) & (y.index < end))
        for model, mruns in exp_runs.groupby("model"):
            mruns = mruns.sort_values(["trained_through", "created_at"]).reset_index(drop=True)
            for i, run in mruns.iterrows():
                # windows of this run's own length; the run serves the dates for which it is
                # the newest model trained on data up to the date
                h = int(json.loads(run["config"])["model"]["window"])
                short_history += int((in_range < h - 1).sum())
                xw, yw, keys = M.inference_windows(y, x, h, start, end)
                which = _assign_runs(keys["date"], mruns)
                if i == 0:
                    skipped += int((which < 0).sum())
                sel = which == i
                if not sel.any():
                    continue
                system = load_system(run["checkpoint"])
                beta, w = predict(system, xw[sel], yw[sel])
                k = keys[sel].reset_index(drop=True)
                used.append(run["run_id"])
                for j, factor in enumerate(x.columns):
                    beta_rows.append(
                        k.assign(
                            experiment=experiment,
                            model=model,
                            factor=factor,
                            beta=beta[:, j],
                            run_id=run["run_id"],
                        )
                    )
                if config.weights and w is not None:
                    n_lags = w.shape[1]
                    weight_rows.append(
                        pd.DataFrame(
                            {
                                "date": np.repeat(k["date"].to_numpy(), n_lags),
                                "symbol": np.repeat(k["symbol"].to_numpy(), n_lags),
                                "experiment": experiment,
                                "model": model,
                                "lag": np.tile(
                                    np.arange(n_lags - 1, -1, -1, dtype=np.int16), len(k)
                                ),
                                "weight": w.astype(np.float32).ravel(),
                                "run_id": run["run_id"],
                            }
                        )
                    )
    betas = (
        pd.concat(beta_rows, ignore_index=True)
        if beta_rows
        else pd.DataFrame(columns=store.BETAS.column_names)
    )
    weights = (
        pd.concat(weight_rows, ignore_index=True)
        if weight_rows
        else pd.DataFrame(columns=store.WEIGHTS.column_names)
    )
    with warehouse_db.writer() as conn:
        for (experiment, model), _ in runs.groupby(["experiment", "model"]):
            if experiment in skipped_experiments:
                continue  # its rows stay as they were
            flt = {"experiment": experiment, "model": model}
            part = betas[(betas["experiment"] == experiment) & (betas["model"] == model)]
            warehouse.replace_window(conn, "neuralbeta.betas", part, start, end, flt)
            if config.weights and model.endswith("nbi"):
                wpart = weights[(weights["experiment"] == experiment) & (weights["model"] == model)]
                warehouse.replace_window(conn, "neuralbeta.weights", wpart, start, end, flt)
    if short_history:
        context.log.warning(
            f"{short_history:,} dates in {label} have less history than a model's window "
            "in the data read (the first days of the data): no beta for them"
        )
    if skipped:
        context.log.warning(
            f"{skipped:,} stock-days in {label} precede every trained model's data end "
            "(no beta without look-ahead); they get no row"
        )
    summary = {
        "dagster/row_count": len(betas),
        "runs_used": ", ".join(sorted(set(used))) or "none",
        "stock_days_before_any_model": skipped,
        "experiments_skipped": ", ".join(skipped_experiments) or "none",
    }
    rich = {"preview": preview(betas)}
    yield materialize_result(context, summary, rich, asset_key="neuralbeta_betas")
    yield materialize_result(
        context,
        {"dagster/row_count": len(weights)},
        {"preview": preview(weights)},
        asset_key="nbi_weights",
    )


NEURALBETA_ASSETS = [
    synthetic_scenarios,
    synthetic_baselines,
    kalman_study,
    neuralbeta_model,
    neuralbeta_evaluation,
    neuralbeta_betas,
]
