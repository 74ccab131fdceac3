"""ci/bench/run_all.py: runs benchmark scripts, reports what each gave, never stops at one."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_run_all", ROOT / "ci/bench/run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_run_all"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run_all = _load()

JSON_SCRIPT = """
import argparse, json
p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--n", type=int, default=1)
a = p.parse_args()
print("ratio x2.00 of the baseline")
if a.json:
    open(a.json, "w").write(json.dumps({"n": a.n}))
"""


def _bench(tmp_path: Path, source: str, **kwargs: Any) -> Any:
    script = tmp_path / "bench_fake.py"
    script.write_text(source)
    # An absolute script path replaces ci/bench/ when joined.
    return run_all.Benchmark("fake", str(script), "a fake benchmark", **kwargs)


def test_an_unknown_benchmark_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run_all.main(["--only", "waits,nope"])
    assert info.value.code == 2
    assert "unknown benchmark(s) nope" in capsys.readouterr().err


def test_a_missing_script_is_not_available(tmp_path: Path) -> None:
    bench = run_all.Benchmark("gone", "bench_that_does_not_exist.py", "nothing")
    outcome = run_all.run_benchmark(bench, False, tmp_path)
    assert outcome.status == "not available"
    assert "bench_that_does_not_exist.py does not exist" in outcome.headline


def test_figures_come_through_json_in_the_chosen_mode(tmp_path: Path) -> None:
    bench = _bench(
        tmp_path,
        JSON_SCRIPT,
        full=("--n", "5"),
        quick=("--n", "1"),
        headline=lambda fig, lines: f"n={fig['n']}; {lines[-1]}",
    )
    full = run_all.run_benchmark(bench, False, tmp_path)
    assert full.status == "ok"
    assert full.figures == {"n": 5}
    assert full.headline == "n=5; ratio x2.00 of the baseline"
    quick = run_all.run_benchmark(bench, True, tmp_path)
    assert quick.figures == {"n": 1}


def test_printed_json_is_kept_when_there_is_no_json_option(tmp_path: Path) -> None:
    source = "import json\nprint('phase: 1')\nprint(json.dumps({'a': {'b': 2}}, indent=2))\n"
    outcome = run_all.run_benchmark(_bench(tmp_path, source), False, tmp_path)
    assert outcome.status == "ok"
    assert outcome.figures == {"a": {"b": 2}}
    assert outcome.output[0] == "phase: 1"


def test_a_failure_and_a_timeout_are_reported(tmp_path: Path) -> None:
    failed = run_all.run_benchmark(
        _bench(tmp_path, "print('half done')\nraise SystemExit(3)\n"), False, tmp_path
    )
    assert failed.status == "failed (exit 3)"
    assert failed.headline == "half done"
    slow = _bench(
        tmp_path,
        "import sys, time\nif '--help' in sys.argv: sys.exit(0)\n"
        "print('started', flush=True)\ntime.sleep(60)\n",
    )
    slow = run_all.Benchmark(slow.name, slow.script, slow.what, timeout=2.0)
    timed_out = run_all.run_benchmark(slow, False, tmp_path)
    assert timed_out.status == "timed out after 2 s"
    assert timed_out.seconds < 30


def test_the_markdown_table_has_a_row_per_benchmark() -> None:
    results = {
        "waits": run_all.Outcome("ok", 12.3, headline="lag p50 18 ms | a pipe"),
        "probe": run_all.Outcome("not available", headline="missing"),
    }
    meta = {"finished": "2026-11-24T22:00:00+00:00", "mode": "full", "cores": 2, "python": "3"}
    table = run_all.markdown(results, meta).splitlines()
    assert table[2] == "| benchmark | status | time | headline figures |"
    assert table[4] == "| waits | ok | 12 s | lag p50 18 ms / a pipe |"
    assert table[5] == "| probe | not available | 0 s | missing |"


def test_every_listed_script_exists() -> None:
    for bench in run_all.BENCHMARKS:
        assert (ROOT / "ci" / "bench" / bench.script).is_file(), bench.script


def test_results_json_is_valid_when_present() -> None:
    path = ROOT / "ci" / "bench" / "results.json"
    if not path.exists():
        pytest.skip("no committed benchmark run")
    data = json.loads(path.read_text())
    assert {"meta", "benchmarks"} <= set(data)
