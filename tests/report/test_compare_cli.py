"""`k8sdr report compare OLD NEW`: the phases a later run was slower over, and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdr import cli


def summary(**seconds: float) -> dict[str, Any]:
    """A summary of one experiment whose phases took `seconds` (underscores for spaces)."""
    phases = [
        {"phase": name.replace("_", " "), "seconds": took, "slo_seconds": 30.0, "verdict": "ok"}
        for name, took in seconds.items()
    ]
    return {"experiments": [{"test": "experiments/t.py::test_lb", "phases": phases}]}


def write_run(directory: Path, document: dict[str, Any]) -> Path:
    directory.mkdir()
    (directory / "k8sdr-summary.json").write_text(json.dumps(document))
    return directory


def test_slower_phase_is_flagged_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_run(tmp_path / "old", summary(fail=5.0, drain_LB=2.0, restore=1.0))
    new = write_run(tmp_path / "new", summary(fail=5.1, drain_LB=4.0, restore=0.5))
    # Directories or their summary files, either way.
    assert cli.main(["report", "compare", str(old), str(new / "k8sdr-summary.json")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "SLOWER  experiments/t.py::test_lb: drain LB 2.00s -> 4.00s (+100%)",
        "1 of 3 phases in both runs slower (by more than 20% and 0.5s)",
    ]


def test_threshold_and_min_seconds_decide_what_is_slower(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_run(tmp_path / "old", summary(fail=5.0, drain_LB=2.0))
    new = write_run(tmp_path / "new", summary(fail=6.5, drain_LB=2.4))
    # fail is 30% slower: over the default 20%, under a 50% threshold.
    assert cli.main(["report", "compare", str(old), str(new)]) == 1
    assert (
        "SLOWER  experiments/t.py::test_lb: fail 5.00s -> 6.50s (+30%)" in capsys.readouterr().out
    )
    assert cli.main(["report", "compare", str(old), str(new), "--threshold", "50"]) == 0
    assert capsys.readouterr().out == (
        "0 of 2 phases in both runs slower (by more than 50% and 0.5s)\n"
    )
    # drain LB is 20% slower by 0.4s: flagged only once 0.4s is enough.
    args = ["report", "compare", str(old), str(new), "--threshold", "10", "--min-seconds", "0.3"]
    assert cli.main(args) == 1
    assert "drain LB 2.00s -> 2.40s (+20%)" in capsys.readouterr().out


def test_a_faster_run_or_a_new_phase_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_run(tmp_path / "old", summary(fail=5.0))
    new = write_run(tmp_path / "new", summary(fail=3.0, restore=60.0))
    assert cli.main(["report", "compare", str(old), str(new)]) == 0
    assert "0 of 1 phases in both runs slower" in capsys.readouterr().out


def test_bad_input_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_run(tmp_path / "good", summary(fail=5.0))
    missing = tmp_path / "nowhere"
    assert cli.main(["report", "compare", str(missing), str(good)]) == 2
    assert f"cannot read {missing}" in capsys.readouterr().err
    junk = tmp_path / "junk.json"
    junk.write_text('{"phases": []}')
    assert cli.main(["report", "compare", str(good), str(junk)]) == 2
    assert f"{junk} is not a k8sdr summary" in capsys.readouterr().err
    junk.write_text("not json")
    assert cli.main(["report", "compare", str(good), str(junk)]) == 2
    assert f"{junk} is not JSON" in capsys.readouterr().err
    assert cli.main(["report", "compare", str(good), str(good), "--threshold", "-5"]) == 2
    assert "cannot be negative" in capsys.readouterr().err


def test_the_installed_command_exits_1_when_slower(tmp_path: Path) -> None:
    old = write_run(tmp_path / "old", summary(fail=5.0))
    new = write_run(tmp_path / "new", summary(fail=9.0))
    run = subprocess.run(
        [sys.executable, "-m", "pytest_k8sdr.cli", "report", "compare", str(old), str(new)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "SLOWER  experiments/t.py::test_lb: fail 5.00s -> 9.00s (+80%)" in run.stdout
