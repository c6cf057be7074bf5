"""Where the tests' data lives: the checkout's bundled bars, and the project's shared data, which
sits beside the checkout (`../shared/data`, as CI lays it out), or beside the folder of a git
worktree."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_BARS = ROOT / "src" / "ops_pipeline_local" / "data" / "bars" / "2019-02-12.csv"
SHARED_DATA = next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
