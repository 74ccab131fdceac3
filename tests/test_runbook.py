from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from pytest_k8sdr import ClusterCheckFailed, SLOExceeded
from pytest_k8sdr.runbook import Runbook, parse_duration


@dataclass
class Event:
    at: datetime


@pytest.mark.parametrize(
    ("text", "seconds"), [(5, 5.0), ("90s", 90.0), ("250ms", 0.25), ("2m", 120.0), ("1.5", 1.5)]
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["fast", "-1s", "10h", ""])
def test_parse_duration_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_phase_is_timed_from_the_deciding_event_not_from_when_we_noticed() -> None:
    book = Runbook("t")
    with book.phase("fail", slo="10s") as phase:
        event_time = phase.started + timedelta(seconds=3)
        book.mark("node Unknown", Event(event_time))
    assert phase.verdict == "ok"
    assert phase.duration == pytest.approx(3.0)
    assert book.timeline()[0]["label"] == "node Unknown"
    assert book.timeline()[0]["t"] == pytest.approx(3.0)


def test_slo_exceeded_names_the_phase() -> None:
    book = Runbook("t", slos={"self-heal": "1s"})
    expected = r"phase 'self-heal' exceeded its SLO: took 5\.00s"
    with pytest.raises(SLOExceeded, match=expected) as info, book.phase("self-heal") as phase:
        book.mark("replicas Ready", Event(phase.started + timedelta(seconds=5)))
    assert isinstance(info.value, AssertionError)
    assert book.phases[0].verdict == "slo-exceeded"


def test_check_failure_inside_a_phase_carries_its_name() -> None:
    book = Runbook("worker loss")
    with pytest.raises(ClusterCheckFailed) as info, book.phase("isolate"):
        raise ClusterCheckFailed("pods still bound")
    assert "in runbook phase 'isolate' of 'worker loss'" in info.value.__notes__[0]
    assert book.summary()[0]["verdict"] == "failed"


def test_tool_error_inside_a_phase_is_an_error_verdict() -> None:
    book = Runbook("t")
    with pytest.raises(RuntimeError), book.phase("restore"):
        raise RuntimeError("ssh refused")
    assert book.summary()[0]["verdict"] == "error"
    assert "ssh refused" in book.summary()[0]["error"]


def test_phases_do_not_nest() -> None:
    book = Runbook("t")
    with (
        pytest.raises(RuntimeError, match="inside phase 'fail'"),
        book.phase("fail"),
        book.phase("isolate"),
    ):
        pass


def test_mark_without_event_uses_now() -> None:
    book = Runbook("t")
    before = datetime.now(UTC)
    with book.phase("rebalance"):
        mark = book.mark("evicted 2 pods")
    assert mark.at >= before
    assert mark.phase == "rebalance"
