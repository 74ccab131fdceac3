"""Jobs and CronJobs on a simulated cluster with a real node agent, driven through kubectl."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdr.sim.launcher import SimCluster

KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    sim = SimCluster.start(tmp_path_factory.mktemp("sim-jobs"), workers=1)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def kubectl(cluster: SimCluster, tmp_path: Path) -> Callable[..., Any]:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                str(cluster.kubeconfig_path),
                "--cache-dir",
                str(tmp_path / "kcache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    return run


def _get(kubectl: Callable[..., Any], *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def _wait(what: str, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until fn() is truthy (kubectl has no watch-driven wait for these conditions)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return {}


def _finished(kubectl: Callable[..., Any], name: str, ctype: str) -> dict[str, Any] | None:
    job: dict[str, Any] = _get(kubectl, "job", name)
    return job if _condition(job, ctype) else None


def test_kubectl_create_job_runs_to_completion(kubectl: Callable[..., Any]) -> None:
    kubectl("create", "job", "once", "--image=busybox:1.36")
    job = _wait("Complete", lambda: _finished(kubectl, "once", "Complete"))
    assert job["status"]["succeeded"] == 1
    assert _condition(job, "Complete")["reason"] == "CompletionsReached"
    pods = _get(kubectl, "pods", "-l", "batch.kubernetes.io/job-name=once")["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert not pod["metadata"].get("finalizers")
    table = kubectl("get", "job", "once").stdout.split("\n")
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["once", "Complete", "1/1"]


def test_exit_code_annotation_fails_the_job(kubectl: Callable[..., Any]) -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "broken"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "annotations": {
                        "sim.k8sdr.io/exit-code": "3",
                        "sim.k8sdr.io/run-seconds": "0.2",
                    }
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox:1.36"}],
                },
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    job = _wait("Failed", lambda: _finished(kubectl, "broken", "Failed"))
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 1
    pod = _get(kubectl, "pods", "-l", "batch.kubernetes.io/job-name=broken")["items"][0]
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_cronjob_and_job_from_cronjob(kubectl: Callable[..., Any], cluster: SimCluster) -> None:
    kubectl("create", "cronjob", "tick", "--image=busybox:1.36", "--schedule=* * * * *")
    kubectl("create", "job", "tick-now", "--from=cronjob/tick")
    job = _get(kubectl, "job", "tick-now")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    _wait("manual job Complete", lambda: _condition(_get(kubectl, "job", "tick-now"), "Complete"))
    cluster.advance_clock(60)
    scheduled = _wait(
        "the scheduled job",
        lambda: [
            j
            for j in _get(kubectl, "jobs")["items"]
            if j["metadata"]["name"].startswith("tick-") and j["metadata"]["name"] != "tick-now"
        ],
    )
    assert (
        "batch.kubernetes.io/cronjob-scheduled-timestamp" in scheduled[0]["metadata"]["annotations"]
    )
    _wait(
        "lastScheduleTime",
        lambda: _get(kubectl, "cronjob", "tick")["status"].get("lastScheduleTime"),
    )
    table = kubectl("get", "cronjob", "tick").stdout.split("\n")
    assert table[0].split()[:5] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE"]


def test_on_failure_restarts_count_against_the_backoff_limit(kubectl: Callable[..., Any]) -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "crashy"},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {
                    "annotations": {
                        "sim.k8sdr.io/exit-code": "1",
                        "sim.k8sdr.io/run-seconds": "0.1",
                    }
                },
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "c", "image": "busybox:1.36"}],
                },
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    job = _wait("Failed", lambda: _finished(kubectl, "crashy", "Failed"))
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    # The kubelet restarted the one pod's container in place (with back-off); the controller
    # made no other pod, and deleted that one when the Job failed.
    created = _get(kubectl, "events", "--field-selector", "reason=SuccessfulCreate")["items"]
    assert [e["involvedObject"]["name"] for e in created if "crashy" in e["message"]] == ["crashy"]
    backoff = _get(kubectl, "events", "--field-selector", "reason=BackOff")["items"]
    assert any(e["involvedObject"]["name"].startswith("crashy-") for e in backoff)
