"""Measuring tools shared by the benchmarks (no project imports, so any code version works).

- :class:`Clock`, :func:`best_of`: wall and process-CPU seconds of a block or a call;
- :class:`Meter`: wall, CPU and peak RSS per named phase (a thread samples VmRSS of
  /proc/self/status), phases as ``with meter.phase(name)``, :meth:`Meter.iterate` for the
  items of a generator, an optional RSS limit that stops the process on a shared machine;
- :func:`in_child`: call a benchmark function in a fresh interpreter (its own imports and
  peak RSS) and get its JSON result; :func:`run_process`: any command's wall, CPU and peak
  RSS (``os.wait4``);
- :func:`machine`, :func:`effective_cores`: the conditions of a run;
- :func:`md_table`, :func:`write_results`: Markdown and JSON under ``benchmarks/results/``
  (git-ignored).

``python benchmarks/harness.py call SCRIPT FUNCTION ARGS_JSON OUT_JSON`` is how
:func:`in_child` runs a function; nothing else uses that command line.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: set in a child of :func:`in_child`: where its result (or an aborted Meter's partial
#: phases) goes
CHILD_OUT_ENV = "BENCH_CHILD_OUT"
ABORT_EXIT = 3

Timing = tuple[float, float]  # (wall seconds, CPU seconds)


def gib(kib: float) -> float:
    return kib / 2**20


def status_kib(field: str = "VmRSS") -> int:
    """A memory field of /proc/self/status in KiB (VmRSS, VmHWM, ...); 0 if unreadable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Clock:
    """Wall and process-CPU seconds (all threads) of a ``with`` block: ``.wall``, ``.cpu``."""

    wall = cpu = 0.0

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def best_of(fn: Callable[[], Any], repeat: int = 1) -> tuple[Timing, Any]:
    """(wall, CPU) of the call with the least wall time of ``repeat`` calls; the last result."""
    best: Timing = (float("inf"), float("inf"))
    out = None
    for _ in range(max(repeat, 1)):
        out = None  # the previous result is freed before the next call
        with Clock() as c:
            out = fn()
        if c.wall < best[0]:
            best = (c.wall, c.cpu)
    return best, out


class Phase:
    """An open phase of a :class:`Meter`; set ``rows`` (counted into the phase) or ``name``
    (the phase it is accounted to, e.g. once a generator said what it produced)."""

    def __init__(self, name: str, rows: int = 0) -> None:
        self.name, self.rows = name, rows
        self.peak_kib = 0
        self.w0, self.c0 = time.perf_counter(), time.process_time()


class Meter:
    """Wall/CPU seconds, rows and peak RSS per named phase; phases may nest, overlap (other
    threads) and repeat (they accumulate; ``calls`` counts them).

    A daemon thread samples VmRSS every ``interval`` seconds and raises the peak of every
    open phase (a phase's peak is also read at its start and end). With ``abort_gib`` the
    process exits with code 3 when RSS passes it, after writing the phases so far as
    ``{"failed": 3, "aborted_in": ..., "abort_rss_kib": ..., "partial": ...}`` to
    ``$BENCH_CHILD_OUT`` (see :func:`in_child`). With ``timeline``: every sample is kept as
    (``time.time()``, KiB) for :meth:`peak_between` (phases timed by someone else)."""

    def __init__(
        self, interval: float = 0.02, abort_gib: float | None = None, timeline: bool = False
    ) -> None:
        self.abort_kib = abort_gib * 2**20 if abort_gib else None
        self.phases: dict[str, dict[str, float]] = {}
        self.interval = interval
        self.peak_kib = 0
        self.samples: list[tuple[float, int]] | None = [] if timeline else None
        self._open: list[Phase] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            kib = status_kib()
            self._bump(kib)
            if self.samples is not None:
                self.samples.append((time.time(), kib))
            if self.abort_kib and kib > self.abort_kib:
                self._abort(kib)

    def _abort(self, kib: int) -> None:
        where = ", ".join(p.name for p in self._open)
        print(f"ABORT: RSS {gib(kib):.1f} GiB over the limit in {where}", flush=True)
        out = os.environ.get(CHILD_OUT_ENV)
        if out:
            with open(out, "w") as fh:
                json.dump({"failed": ABORT_EXIT, "aborted_in": where, "abort_rss_kib": kib,
                           "partial": self.phases}, fh)
        os._exit(ABORT_EXIT)

    def _bump(self, kib: int) -> None:
        with self._lock:
            self.peak_kib = max(self.peak_kib, kib)
            for ph in self._open:
                ph.peak_kib = max(ph.peak_kib, kib)

    def _record(self, name: str) -> dict[str, float]:
        return self.phases.setdefault(
            name, {"wall": 0.0, "cpu": 0.0, "rss_kib": 0, "rows": 0, "calls": 0}
        )

    def start(self, name: str, rows: int = 0) -> Phase:
        ph = Phase(name, rows)
        with self._lock:
            self._open.append(ph)
        self._bump(status_kib())
        return ph

    def stop(self, ph: Phase, record: bool = True, call: bool = True) -> float:
        """Close ``ph`` (recorded under ``ph.name`` unless ``record`` is false; one more of
        its ``calls`` unless ``call`` is false); its wall seconds. The CPU seconds are the
        process's (every thread) meanwhile."""
        wall, cpu = time.perf_counter() - ph.w0, time.process_time() - ph.c0
        self._bump(status_kib())
        with self._lock:
            self._open.remove(ph)
            if not record:
                return wall
            rec = self._record(ph.name)
            rec["wall"] += wall
            rec["cpu"] += cpu
            rec["rows"] += ph.rows
            rec["calls"] += int(call)
            rec["rss_kib"] = max(rec["rss_kib"], ph.peak_kib)
        return wall

    @contextlib.contextmanager
    def phase(self, name: str, rows: int = 0) -> Iterator[Phase]:
        ph = self.start(name, rows)
        try:
            yield ph
        finally:
            self.stop(ph)

    def add(self, name: str, wall: float, cpu: float, rows: int = 0) -> None:
        """Account seconds measured elsewhere to a phase (its RSS is not known)."""
        with self._lock:
            rec = self._record(name)
            rec["wall"] += wall
            rec["cpu"] += cpu
            rec["rows"] += rows

    def iterate(
        self, name: str | Callable[[Any], str], items: Iterable[Any],
        rows: Callable[[Any], int] | None = None,
    ) -> Iterator[Any]:
        """Yield ``items``, timing each ``next()`` as phase ``name`` (or ``name(item)``, the
        phase named after what came out; the last, empty ``next()`` goes to the phase of
        the item before it, or nowhere) with ``rows(item)`` rows. The consumer's time is
        not counted."""
        it = iter(items)
        last = name if isinstance(name, str) else None
        while True:
            ph = self.start(last or "(iterate)")
            try:
                item = next(it)
            except StopIteration:
                self.stop(ph, record=last is not None, call=False)
                return
            except BaseException:
                self.stop(ph, record=last is not None)
                raise
            if not isinstance(name, str):
                last = ph.name = name(item)
            if rows is not None:
                ph.rows = rows(item)
            self.stop(ph)
            yield item

    def peak_between(self, t0: float, t1: float) -> int:
        """Peak sampled RSS (KiB) between two ``time.time()`` stamps (``timeline=True``)."""
        inside = [k for t, k in self.samples or () if t0 <= t <= t1]
        return max(inside, default=0)

    def close(self) -> dict[str, Any]:
        """Stop sampling: the phases, the sampled peak, VmHWM and ru_maxrss (KiB)."""
        self._stop.set()
        self._thread.join()
        return {
            "phases": self.phases,
            "peak_sampled_kib": self.peak_kib,
            "vmhwm_kib": status_kib("VmHWM"),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


# ----------------------------------------------------------------------------- processes


@dataclass
class ProcessRun:
    """A finished command: wall seconds, CPU seconds (user + system of the process and the
    children it waited for), peak RSS of the largest of them (KiB), exit code, output."""

    wall: float
    cpu: float
    max_rss_kib: int
    returncode: int
    output: str


def run_process(
    cmd: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None,
    echo: bool = False,
) -> ProcessRun:
    """Run ``cmd`` to the end (stdout and stderr together, shown live with ``echo``)."""
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, text=True, stdin=subprocess.DEVNULL,
            stdout=None if echo else log, stderr=None if echo else subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return ProcessRun(
        wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode, output
    )


def in_child(
    script: str | Path, function: str, /, env: dict[str, str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """``function(**kwargs)`` of the benchmark ``script`` in a fresh interpreter: its return
    value (a JSON-able dict; keyword values go through JSON, so pass paths as strings) with
    ``child_wall_s``, ``child_cpu_s`` and ``child_max_rss_kib`` of the whole process added.
    A failed child gives ``{"failed": exit code, ...}`` (an aborted :class:`Meter`'s
    partial phases included). Output is shown as it comes."""
    with tempfile.TemporaryDirectory(prefix="bench_child_") as tmp:
        args, out = Path(tmp) / "args.json", Path(tmp) / "out.json"
        args.write_text(json.dumps(kwargs, default=str))
        cmd = [sys.executable, str(Path(__file__).resolve()), "call",
               str(Path(script).resolve()), function, str(args), str(out)]
        run = run_process(
            cmd, env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                      CHILD_OUT_ENV: str(out)}, echo=True,
        )
        text = out.read_text() if out.exists() else ""
    data: dict[str, Any] = json.loads(text) if text else {}
    if run.returncode:
        data.setdefault("failed", run.returncode)
    data.update(child_wall_s=run.wall, child_cpu_s=run.cpu, child_max_rss_kib=run.max_rss_kib)
    return data


def _call(script: str, function: str, args: str, out: str) -> None:
    """The child side of :func:`in_child`: import ``script`` by its name and call it."""
    path = Path(script)
    sys.path.insert(0, str(path.parent))
    module = importlib.import_module(path.stem)
    result = getattr(module, function)(**json.loads(Path(args).read_text()))
    Path(out).write_text(json.dumps(result, default=str))


# ----------------------------------------------------------------------------- conditions


def _burn(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def effective_cores(seconds: float = 1.0) -> float:
    """CPU capacity this process gets right now: the work two busy processes do in
    ``seconds`` over the work one does (2.0 on two free cores; other jobs lower it)."""
    import multiprocessing as mp

    one = _burn(seconds)
    with mp.get_context("fork").Pool(2) as pool:
        two = sum(pool.map(_burn, [seconds, seconds]))
    return round(two / one, 2)


def machine(*packages: str) -> dict[str, Any]:
    """Cores, load average, Python and the installed versions of ``packages`` (read from
    their metadata: nothing is imported)."""
    from importlib import metadata

    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[name] = metadata.version(name)
    return info


# ----------------------------------------------------------------------------- results


def md_table(header: list[str], rows: Iterable[Iterable[Any]], align: str = "") -> list[str]:
    """Markdown table lines; ``align``: one character per column, ``r`` right-aligns."""
    marks = ["---:" if align[i:i + 1] == "r" else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(marks) + " |",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]


def write_results(
    name: str | Path, markdown: str, data: dict[str, Any] | None = None
) -> list[Path]:
    """``<name>.md`` (and ``<name>.json`` with ``data``) under ``benchmarks/results/``, or
    beside the path ``name`` when it has a folder; the paths written."""
    base = Path(name)
    if base.parent == Path("."):
        base = RESULTS / base
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = [base.with_name(base.name + ".md")]
    paths[0].write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    if data is not None:
        paths.append(base.with_name(base.name + ".json"))
        paths[1].write_text(json.dumps(data, indent=1, default=str))
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "call":
        raise SystemExit("usage: harness.py call SCRIPT FUNCTION ARGS_JSON OUT_JSON")
    _call(*sys.argv[2:])
