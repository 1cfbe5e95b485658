"""The Dagster UI as a user sees it, in headless Chromium.

Materializes ~14 months of the embedded data with the CLI, starts ``dagster dev`` on the
test's home and drives the system ``chromium`` through the DevTools protocol (a click is
needed: Dagster shows a large Markdown value, such as a plot, behind ``[Show Markdown]``).
Asserts the lineage graph's asset names, the ``daily_betas`` plot (a decoded PNG ``<img>``)
in its asset page's metadata, the checks and a run page, and saves screenshots under the
test's tmp dir; with ``BETA_PIPELINE_UPDATE_SCREENSHOTS=1`` it also refreshes
``docs/ui_lineage.png`` and ``docs/ui_daily_betas.png``. Skipped without a chromium binary.
"""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from beta_pipeline_tests.support.dagster_dev import LOCATION, dagster_dev
from beta_pipeline_tests.support.paths import REPO_ROOT

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
    None,
)
pytestmark = [
    pytest.mark.slow,  # dagster dev, 14 months materialized, a browser
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH"),
]
websockets_sync = pytest.importorskip("websockets.sync.client")

ASSETS = "raw_prices,raw_market,daily_returns,daily_betas"
START, END = "2020-01-02", "2021-02-26"
WIDTH, HEIGHT = 1400, 1000


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


class Browser:
    """A minimal DevTools-protocol client of one headless Chromium page."""

    def __init__(self, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        port = _wait(
            lambda: port_file.exists() and port_file.read_text().split("\n")[0].strip(),
            30,
            "chromium's DevTools port",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.loads(r.read()) if t["type"] == "page"]
        self.ws = websockets_sync.connect(
            pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10
        )
        self._id = 0
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )

    def send(self, method: str, params: dict | None = None) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def open(self, url: str, *texts: str, timeout: float = 40) -> str:
        """Navigate and wait until the page's text shows every one of ``texts``."""
        self.send("Page.navigate", {"url": url})
        text = _wait(
            lambda: (t := self.js("document.body ? document.body.innerText : ''") or "")
            and all(x in t for x in texts)
            and t,
            timeout,
            f"{texts} on {url}",
        )
        self.dismiss_dialogs()
        return text

    def dismiss_dialogs(self, wait: float = 3.0) -> None:
        """Skip the UI's first-visit "Join the Dagster community" dialog, if it shows."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.js(
                """(() => {
                  const skip = [...document.querySelectorAll('button')]
                    .find(b => b.innerText.trim() === 'Skip');
                  if (skip) { skip.click(); return true; }
                  return false;
                })()"""
            ):
                time.sleep(0.5)
                return
            time.sleep(0.25)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def ui(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``dagster dev`` on the test's home after a CLI materialization; yields its URL."""
    from beta_pipeline.cli import main

    monkeypatch.setenv("BETA_PIPELINE_AUTOMATION", "off")
    assert main(["run", "--select", ASSETS, "--start", START, "--end", END]) == 0
    with dagster_dev(tmp_path, automation=False, startup_timeout=120) as server:
        yield server.url


@pytest.mark.timeout(300)
def test_ui_shows_lineage_plot_checks_and_run(ui: str, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    run = dg.DagsterInstance.get().get_runs(limit=1)[0]
    from beta_pipeline.definitions import defs

    model_checks = any(
        key.name == "betas_finite" for key in defs.resolve_asset_graph().asset_check_keys
    )
    browser = Browser(tmp_path / "chrome")
    try:
        # the lineage graph of the baselines group (daily_betas and its neighbours)
        group = f"{ui}/locations/{LOCATION}/asset-groups/baselines"
        browser.open(group, "daily_betas", "hedging_performance")
        time.sleep(2)  # the graph's layout settles after the names are in the DOM
        lineage = browser.screenshot(shots / "ui_lineage.png")

        # the asset page: latest materialization's metadata, the plot behind [Show Markdown]
        text = browser.open(f"{ui}/assets/daily_betas", "example_betas", "Latest materialization")
        assert "example_betas_file" in text and "run_partitions" in text
        clicked = browser.js(
            """(() => {
              const cell = [...document.querySelectorAll('td')]
                .find(td => td.innerText.trim() === 'example_betas');
              const link = cell && [...cell.closest('tr').querySelectorAll('a')]
                .find(a => a.innerText.includes('Show Markdown'));
              if (link) { link.click(); return true; }
              return false;
            })()"""
        )
        assert clicked, "no [Show Markdown] link in the example_betas row"
        width = _wait(
            lambda: browser.js(
                """(() => {
                  const img = document.querySelector('img[src^="data:image/png;base64,"]');
                  return img && img.complete ? img.naturalWidth : 0;
                })()"""
            ),
            20,
            "the decoded example_betas <img>",
        )
        assert width > 300
        time.sleep(1.5)  # the dialog fades in
        plot_page = browser.screenshot(shots / "ui_daily_betas.png")

        # checks: the data-quality suite of daily_returns; the model checks when registered
        browser.open(f"{ui}/assets/daily_returns?view=checks", "returns_keys_not_null")
        browser.screenshot(shots / "ui_daily_returns_checks.png")
        if model_checks:
            browser.open(
                f"{ui}/assets/daily_betas?view=checks",
                "betas_finite",
                "betas_within_bounds",
                "betas_cover_sessions",
            )
            browser.screenshot(shots / "ui_daily_betas_checks.png")

        # the run page: its steps and the checks evaluated in it
        text = browser.open(f"{ui}/runs/{run.run_id}", "daily_betas", "daily_returns_quality")
        assert "RUN_SUCCESS" in text or "Success" in text, text[:2000]
        browser.screenshot(shots / "ui_run.png")
    finally:
        browser.close()
    for shot in shots.iterdir():
        assert shot.stat().st_size > 10_000, shot  # not a blank page
    if os.environ.get("BETA_PIPELINE_UPDATE_SCREENSHOTS") == "1":
        docs = REPO_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(lineage, docs / "ui_lineage.png")
        shutil.copyfile(plot_page, docs / "ui_daily_betas.png")
