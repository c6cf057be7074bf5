#!/usr/bin/env python
"""Side by side: our replay through the real state machines against a Lumibot 4.6.30 backtest.

Both run the same real 1-minute bars (AAPL, AMZN, MSFT, TSLA; Alpha Vantage export kept in
github.com/masonblier/eqker, ISC; bundled in `src/ops_pipeline_local/data/bars/`) over
the 2019-02-11 session and over the week 2019-02-11..15, each as its own process, timed wall
clock from start to exit (imports and setup included on both sides):

- ours: `ops-pipeline replay --bars CSV --database-url URL` on a throwaway PostgreSQL database:
  moto's ASL interpreter runs the minute state machine, every handler in-process, every bar,
  feature, recommendation and execution persisted. Run with the default step and, when the
  replay has a `--step` option, with `--step 1` too (the faithful minute-by-minute replay).
- Lumibot: an SMA20/SMA50 cross + volume-ratio strategy (the rule our signal engine applies:
  BUY when the close crosses above SMA20 with SMA20 >= SMA50, SELL when it crosses below with
  SMA20 <= SMA50, only when the volume ratio is at least 1.2, 10,000 USD per order, at most
  25,000 USD per ticker, a SELL closes the position) backtested offline with
  `PandasDataBacktesting` from the same bars. Lumibot is installed into a throwaway virtualenv
  (python3.12 -m venv) under the cache folder (--cache, default ~/.cache/ops-pipeline-bench),
  never into the project's dependencies; the first run installs it (minutes).

Prints each wall time and the ratio ours / Lumibot beside the earlier ratio (issue 18's start:
0.64 the session, 0.39 the week) and the goal (<= 0.25, <= 0.15), and the import floor: a process
that only imports the modules a replay loads (found by one replay run under `python -X
importtime`), nothing run. Where that floor alone is more than the goal allows, process start
dominates and the goal is out of reach of a replay that loads those modules.
Usage: python bench/replay_vs_lumibot.py [--only session|week] [--repeat N] [--skip-step-1]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "layers" / "shared", REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

LUMIBOT = "lumibot==4.6.30"
TICKERS = ("AAPL", "AMZN", "MSFT", "TSLA")
DATA = REPO / "src" / "ops_pipeline_local" / "data" / "bars"
WINDOWS = {"session": ("2019-02-11", "2019-02-11"), "week": ("2019-02-11", "2019-02-15")}

LUMIBOT_SCRIPT = r'''
import os, sys, time
started = time.perf_counter()
os.environ.setdefault("BACKTESTING_DATA_SOURCE", "none")
os.environ.setdefault("IS_BACKTESTING", "True")
from datetime import datetime, timedelta
import pandas as pd
from lumibot.backtesting import PandasDataBacktesting
from lumibot.entities import Asset, Data
from lumibot.strategies import Strategy
imported = time.perf_counter()

csv, first, last = sys.argv[1], sys.argv[2], sys.argv[3]
bars = pd.read_csv(csv, parse_dates=["timestamp"])
bars["timestamp"] = bars["timestamp"].dt.tz_convert("America/New_York")


class SmaVolume(Strategy):
    """SMA20/SMA50 cross with a volume-ratio band, as ops-pipeline's signal engine decides."""

    def initialize(self):
        self.sleeptime = "1M"
        self.fills = 0

    def on_trading_iteration(self):
        for symbol in self.parameters["symbols"]:
            asset = Asset(symbol, Asset.AssetType.STOCK)
            history = self.get_historical_prices(asset, 51, "minute")
            if history is None or history.df is None or len(history.df) < 51:
                continue
            df = history.df
            close, volume = df["close"], df["volume"]
            sma20, sma50 = close.rolling(20).mean(), close.iloc[-50:].mean()
            ratio = volume.iloc[-1] / volume.iloc[-20:].mean() if volume.iloc[-20:].mean() else 0
            above_now = close.iloc[-1] > sma20.iloc[-1]
            above_before = close.iloc[-2] > sma20.iloc[-2]
            position = self.get_position(asset)
            held = float(position.quantity) if position else 0.0
            price = float(close.iloc[-1])
            if ratio < 1.2:
                continue
            if above_now and not above_before and sma20.iloc[-1] >= sma50:
                room = 25_000 - held * price
                qty = int(min(10_000, room) // price)
                if qty > 0:
                    self.submit_order(self.create_order(asset, qty, "buy"))
                    self.fills += 1
            elif not above_now and above_before and sma20.iloc[-1] <= sma50 and held > 0:
                self.submit_order(self.create_order(asset, held, "sell"))
                self.fills += 1


pandas_data = {}
for symbol, frame in bars.groupby("symbol"):
    asset = Asset(symbol, Asset.AssetType.STOCK)
    frame = frame.set_index("timestamp")[["open", "high", "low", "close", "volume"]]
    pandas_data[asset] = Data(asset, frame, timestep="minute")
start = datetime.fromisoformat(first)
end = datetime.fromisoformat(last) + timedelta(days=1)
_, strategy = SmaVolume.run_backtest(
    PandasDataBacktesting,
    start,
    end,
    pandas_data=pandas_data,
    parameters={"symbols": sorted(bars["symbol"].unique())},
    budget=100_000, benchmark_asset=None, risk_free_rate=0.0, analyze_backtest=False,
    show_plot=False, show_tearsheet=False, save_tearsheet=False, save_stats_file=False,
    show_indicators=False, save_logfile=False, show_progress_bar=False, quiet_logs=True,
)
done = time.perf_counter()
print(f"LUMIBOT imports={imported - started:.2f} backtest={done - imported:.2f}"
      f" orders={strategy.fills} value={strategy.portfolio_value:.2f}")
'''


def cache_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ops-pipeline-bench"


def python312() -> str:
    for candidate in (
        "python3.12",
        *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ):
        path = shutil.which(str(candidate)) or (
            str(candidate) if Path(candidate).is_file() else None
        )
        if (
            path
            and subprocess.run(
                [path, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                capture_output=True,
            ).returncode
            == 0
        ):
            return path
    raise SystemExit("python3.12 is needed for Lumibot's throwaway virtualenv")


def lumibot_python(cache: Path) -> Path:
    """The throwaway venv with Lumibot 4.6.30, made (and installed) on first use."""
    venv = cache / "lumibot-4.6.30"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.is_file():
        return python
    print(f"installing {LUMIBOT} into {venv} (first run only) ...", file=sys.stderr, flush=True)
    if not python.is_file():
        subprocess.run([python312(), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", LUMIBOT], check=True)
    stamp.touch()
    return python


def bars_csv(folder: Path, first: str, last: str) -> Path:
    from ops_pipeline_local.bars import NEW_YORK, read_bars, write_bars

    chosen = [
        bar
        for bar in read_bars(DATA)
        if bar.symbol in TICKERS and first <= bar.ts.astimezone(NEW_YORK).date().isoformat() <= last
    ]
    path = folder / f"bars-{first}-{last}.csv"
    write_bars(chosen, path)
    return path


def replay_has_step() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "ops_pipeline_local.cli", "replay", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
    ).stdout
    return "--step" in out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "layers" / "shared"), str(REPO / "src")])
    return env


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(bars: Path, server_url: str, step: int | None) -> tuple[float, float, str]:
    from ops_pipeline_local.embedded_db import throwaway_database

    with throwaway_database(server_url) as url:
        command = [
            sys.executable,
            "-m",
            "ops_pipeline_local.cli",
            "replay",
            "--bars",
            str(bars),
            "--database-url",
            url,
            "--json",
        ]
        if step is not None:
            command += ["--step", str(step)]
        cpu, start = _child_cpu(), time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=_env())
        wall, cpu = time.perf_counter() - start, _child_cpu() - cpu
        if done.returncode != 0:
            raise SystemExit(f"replay failed ({done.returncode}):\n{done.stderr[-3000:]}")
        import json

        summary = json.loads(done.stdout)
        rows = f"bars {summary['bars']}, executions {summary['executions']}, P&L {summary['simulated_pnl']['realized_and_unrealized']}"
        return wall, cpu, rows


def run_lumibot(
    python: Path, bars: Path, first: str, last: str, workdir: Path
) -> tuple[float, float, str]:
    script = workdir / "lumibot_sma_volume.py"
    script.write_text(LUMIBOT_SCRIPT)
    cpu, start = _child_cpu(), time.perf_counter()
    done = subprocess.run(
        [str(python), str(script), str(bars), first, last],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": ""},
    )
    wall, cpu = time.perf_counter() - start, _child_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"Lumibot failed ({done.returncode}):\n{done.stderr[-3000:]}")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("LUMIBOT ")), "")
    return wall, cpu, line.removeprefix("LUMIBOT ")


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.machine()},"
        f" Python {platform.python_version()}, load average {load}"
    )


# The ratio ours / Lumibot (wall) when issue 18 began (round 4, load average 0.7: bench/RESULTS.md),
# and the goal.
EARLIER_RATIO = {"session": 0.64, "week": 0.39}
GOAL_RATIO = {"session": 0.25, "week": 0.15}


def import_floor(bars: Path, server_url: str) -> tuple[float, float, int]:
    """Wall and CPU seconds of a process that imports, and only imports, the top-level modules one
    replay of `bars` imports (read from `python -X importtime`); and how many modules."""
    from ops_pipeline_local.embedded_db import throwaway_database

    with throwaway_database(server_url) as url:
        done = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "ops_pipeline_local.cli",
                "replay",
                "--bars",
                str(bars),
                "--database-url",
                url,
                "--json",
            ],
            capture_output=True,
            text=True,
            env=_env(),
        )
    modules = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1]
            if name.strip() and not name.startswith("  ") and name.strip() != "__main__":
                modules.append(name.strip())
    script = (
        "import importlib\n"
        f"for name in {sorted(set(modules))!r}:\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except Exception:\n        pass\n"
    )
    cpu, start = _child_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, env=_env())
    return time.perf_counter() - start, _child_cpu() - cpu, len(set(modules))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(WINDOWS), help="one window only")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per figure; the median is printed"
    )
    parser.add_argument("--cache", help="where Lumibot's throwaway venv lives")
    parser.add_argument("--skip-step-1", action="store_true", help="only the default step")
    args = parser.parse_args(argv)
    from ops_pipeline_local.embedded_db import server_or_embedded

    python = lumibot_python(cache_dir(args.cache))
    server = server_or_embedded()
    steps: list[int | None] = [None]
    if replay_has_step() and not args.skip_step_1:
        steps.append(1)
    print("ops-pipeline replay (real state machines, every row in PostgreSQL) vs Lumibot 4.6.30")
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"bars: {DATA.relative_to(REPO)} ({', '.join(TICKERS)})")
    windows = [args.only] if args.only else list(WINDOWS)
    with tempfile.TemporaryDirectory(prefix="ops-bench-") as tmp:
        work = Path(tmp)
        for window in windows:
            first, last = WINDOWS[window]
            bars = bars_csv(work, first, last)
            lumi = [run_lumibot(python, bars, first, last, work) for _ in range(args.repeat)]
            lumi_wall = statistics.median(w for w, _, _ in lumi)
            lumi_cpu = statistics.median(c for _, c, _ in lumi)
            print(f"\n{window} {first}..{last}                wall s    CPU s (the process)")
            print(
                f"  Lumibot 4.6.30              {lumi_wall:8.2f} {lumi_cpu:8.2f}   ({lumi[-1][2]})"
            )
            for step in steps:
                ours = [run_ours(bars, server, step) for _ in range(args.repeat)]
                wall = statistics.median(w for w, _, _ in ours)
                cpu = statistics.median(c for _, c, _ in ours)
                label = "default step" if step is None else f"--step {step}"
                print(f"  ops-pipeline ({label:<12}) {wall:8.2f} {cpu:8.2f}   ({ours[-1][2]})")
                print(
                    f"    ratio ops-pipeline / Lumibot: wall {wall / lumi_wall:.2f},"
                    f" CPU {cpu / lumi_cpu:.2f}"
                    + (
                        f"   (earlier {EARLIER_RATIO[window]:.2f}, goal <= {GOAL_RATIO[window]:.2f})"
                        if step is None
                        else ""
                    )
                )
            floors = [import_floor(bars, server) for _ in range(args.repeat)]
            f_wall = statistics.median(w for w, _, _ in floors)
            f_cpu = statistics.median(c for _, c, _ in floors)
            print(
                f"  import floor: only importing the {floors[-1][2]} modules a replay loads"
                f" {f_wall:8.2f} {f_cpu:8.2f}   = {f_wall / lumi_wall:.2f} of Lumibot's wall"
                f" (goal {GOAL_RATIO[window]:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
