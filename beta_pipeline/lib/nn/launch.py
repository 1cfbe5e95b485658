"""The processes of multi-process (DDP) NeuralBeta training: ``python -m`` this module ``RUN_DIR``.

:func:`beta_pipeline.lib.nn.train.train` writes the run (config, data module, budget, seed,
Trainer settings) to ``RUN_DIR/spec.pt`` and runs this module in a child process. That process
is local rank 0: Lightning's ``ddp`` launcher re-executes this same command once per further
local rank (with ``LOCAL_RANK`` set), so the caller's command line (a Dagster step, pytest) is
never re-run. Every rank reads the spec and trains; each writes ``RUN_DIR/rank<r>.json`` (its
timings) and local rank 0 writes ``RUN_DIR/result.json`` (best checkpoint, score, history:
identical on every rank). Only global rank 0 writes the checkpoint. A rank whose parent dies
(the caller, or local rank 0) exits, so an interrupted run leaves no processes behind.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import torch

from beta_pipeline.lib.nn.config import NeuralBetaConfig
from beta_pipeline.lib.nn.train import fit_process, quiet_lightning


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this process when its parent goes away (it is then re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _write_json(path: Path, payload: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Train one rank of the run in ``argv[0]``; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m beta_pipeline.lib.nn.launch RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    _exit_with_parent()
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(max(int(os.environ["OMP_NUM_THREADS"]), 1))
    quiet_lightning()
    spec = torch.load(run_dir / "spec.pt", weights_only=False)
    fit = fit_process(
        NeuralBetaConfig.from_dict(spec["config"]),
        spec["datamodule"],
        spec["budget"],
        spec["seed"],
        spec["out_dir"],
        spec["accelerator"],
        spec["progress"],
        spec["devices"],
        spec["num_nodes"],
        spec["strategy"],
    )
    _write_json(
        run_dir / f"rank{fit.global_rank}.json",
        {"global_rank": fit.global_rank, "seconds": fit.seconds, "cpu_seconds": fit.cpu_seconds},
    )
    if fit.local_rank == 0:
        _write_json(
            run_dir / "result.json",
            {
                "best_path": fit.best_path,
                "best_score": fit.best_score,
                "history": fit.system.history,
                "steps": fit.steps,
                "seconds": fit.seconds,
                "layout": fit.layout,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
