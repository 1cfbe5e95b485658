"""A scheduled daily run imports the definitions: they must not load the training stack
(torch, lightning), statsmodels or matplotlib, which only the NeuralBeta / crypto training,
the Kalman MLE reference, the portfolio sorts and the plot helpers need (issue 12)."""

import json
import subprocess
import sys

CODE = """
import json, sys
import beta_pipeline.definitions  # noqa: F401
print(json.dumps({m: m in sys.modules for m in ("torch", "lightning", "lightning.pytorch",
                                                  "pytorch_lightning", "matplotlib",
                                                  "statsmodels")}))
"""


def test_definitions_do_not_import_training_stack_statsmodels_or_matplotlib():
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=300
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not any(loaded.values()), loaded


def test_plots_still_render_headless():
    import pandas as pd

    from beta_pipeline.lib import plots

    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-02", "2024-01-03"] * 2),
            "symbol": ["A", "A", "B", "B"],
            "estimator": ["ols"] * 4,
            "beta": [1.0, 1.1, 0.9, 0.8],
        }
    )
    png = plots.small_multiples(frame, "date", "beta", "symbol", "estimator", "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
