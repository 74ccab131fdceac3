"""The crash drill, small: 3 runs of the whole runbook SIGKILLed, all recovered.

The drill itself is the benchmark `ci/bench/bench_crash_drill.py` (20 runs); this runs its code
with a fixed seed, so the kill points are the same on every run of the suite, and kills its
first run the moment a machine is down, so one kill always finds a disruption open.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SEED = 15  # kill points early (startup), mid-runbook and near the end


def _load() -> ModuleType:
    path = ROOT / "ci" / "bench" / "bench_crash_drill.py"
    spec = importlib.util.spec_from_file_location("bench_crash_drill", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_crash_drill"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_three_sigkilled_runbooks_are_all_recovered(tmp_path: Path) -> None:
    # The first run is killed while a machine is down (journaled, not yet started again):
    # a drawn kill point alone may land after a fast run has ended.
    drill = _load().drill(3, SEED, workdir=tmp_path, kill_on_first="machine")
    print(drill.summary())
    assert drill.baseline is not None
    assert drill.baseline.recovered, drill.baseline.line()
    report = "\n".join(run.line() for run in drill.runs)
    assert drill.recovered == len(drill.runs) == 3, report
    assert any(run.killed and run.open_at_kill for run in drill.runs), report
