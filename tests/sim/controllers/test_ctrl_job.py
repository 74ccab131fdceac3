"""The Job and CronJob controllers, in process: the test plays each pod's container exit."""

from __future__ import annotations

from typing import Any

from ctrl_support import TEST_PROFILE, Cluster, condition, run

JSON = dict[str, Any]
PROFILE = TEST_PROFILE.replace(job_backoff=0.1)
TRACKING = "batch.kubernetes.io/job-tracking"


def _job(name: str, **spec: Any) -> JSON:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "busybox:1.36"}],
                }
            },
            **spec,
        },
    }


def _pods(c: Cluster, job: str) -> list[JSON]:
    return [
        p
        for p in c.store.list("pods", "default")["items"]
        if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == job
    ]


def _running(c: Cluster, job: str) -> list[JSON]:
    return [
        p
        for p in _pods(c, job)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def _exit(c: Cluster, pod: JSON, phase: str) -> None:
    """The pod's container exits (0 for Succeeded, 1 for Failed), as a kubelet reports it."""
    live = c.store.get("pods", "default", pod["metadata"]["name"])
    code = 0 if phase == "Succeeded" else 1
    live["status"]["phase"] = phase
    live["status"]["containerStatuses"] = [
        {
            "name": "c",
            "ready": False,
            "restartCount": 0,
            "image": "busybox:1.36",
            "imageID": "",
            "state": {
                "terminated": {"exitCode": code, "reason": "Completed" if not code else "Error"}
            },
        }
    ]
    c.store.update("pods", "default", live["metadata"]["name"], live, subresource="status")


def _job_status(c: Cluster, name: str) -> JSON:
    return dict(c.store.get("jobs", "default", name).get("status") or {})


def test_completions_run_at_most_parallelism_pods_at_once() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        created = c.store.create("jobs", "default", _job("batch", completions=4, parallelism=2))
        uid = created["metadata"]["uid"]
        assert created["spec"]["selector"] == {
            "matchLabels": {"batch.kubernetes.io/controller-uid": uid}
        }
        most: list[int] = []
        c.store.subscribe(
            "pods",
            lambda ev: most.append(
                sum(
                    1
                    for p in _pods(c, "batch")
                    if p["status"].get("phase") in (None, "Pending", "Running")
                    and not p["metadata"].get("deletionTimestamp")
                )
            ),
        )
        done = 0
        while done < 4:
            pods = await c.wait_for(lambda: _running(c, "batch"), 5, "a running pod")
            pod = pods[0]
            assert pod["metadata"]["finalizers"] == [TRACKING]
            ref = pod["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", uid, True)
            _exit(c, pod, "Succeeded")
            done += 1
        job = await c.wait_for(
            lambda: c.get_if("jobs", "default", "batch", lambda j: condition(j, "Complete")),
            5,
            "Complete",
        )
        assert max(most) == 2
        status = job["status"]
        assert status["succeeded"] == 4
        assert "active" not in status
        assert "failed" not in status
        assert status["completionTime"]
        assert status["startTime"]
        for ctype in ("SuccessCriteriaMet", "Complete"):
            cond = condition(job, ctype) or {}
            assert (cond.get("status"), cond.get("reason")) == ("True", "CompletionsReached")
        # Counted pods lose the tracking finalizer; no pod beyond the completions was made.
        assert len(_pods(c, "batch")) == 4
        assert not any(p["metadata"].get("finalizers") for p in _pods(c, "batch"))
        assert c.events("Completed", "batch")
        assert len(c.events("SuccessfulCreate", "batch")) == 4

    run(scenario, profile=PROFILE)


def test_backoff_limit_fails_the_job() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create("jobs", "default", _job("flaky", backoffLimit=1))
        seen: set[str] = set()
        for _ in range(2):
            pods = await c.wait_for(
                lambda: [p for p in _running(c, "flaky") if p["metadata"]["name"] not in seen],
                5,
                "a new running pod",
            )
            seen.add(pods[0]["metadata"]["name"])
            _exit(c, pods[0], "Failed")
        job = await c.wait_for(
            lambda: c.get_if("jobs", "default", "flaky", lambda j: condition(j, "Failed")),
            5,
            "Failed",
        )
        failed = condition(job, "Failed") or {}
        assert failed["reason"] == "BackoffLimitExceeded"
        assert failed["message"] == "Job has reached the specified backoff limit"
        assert (condition(job, "FailureTarget") or {}).get("reason") == "BackoffLimitExceeded"
        assert job["status"]["failed"] == 2
        assert "active" not in job["status"]
        assert len(_pods(c, "flaky")) == 2  # no third pod
        assert c.events("BackoffLimitExceeded", "flaky")

    run(scenario, profile=PROFILE)


def test_a_job_pod_on_a_dead_node_is_replaced() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create("jobs", "default", _job("survivor", backoffLimit=3))
        first = (await c.wait_for(lambda: _running(c, "survivor"), 5, "running"))[0]
        c.add_node("w2")
        c.kubelets["w1"].kill()
        # Taint eviction deletes the pod; it stays Terminating on the dead node, counts as
        # failed (podReplacementPolicy TerminatingOrFailed) and is replaced at once.
        second = (
            await c.wait_for(
                lambda: [
                    p
                    for p in _running(c, "survivor")
                    if p["metadata"]["name"] != first["metadata"]["name"]
                ],
                15,
                "a replacement on w2",
            )
        )[0]
        assert second["spec"]["nodeName"] == "w2"
        assert _job_status(c, "survivor")["failed"] == 1
        old = c.store.get("pods", "default", first["metadata"]["name"])
        assert old["metadata"].get("deletionTimestamp")
        assert TRACKING not in (old["metadata"].get("finalizers") or [])
        _exit(c, second, "Succeeded")
        # Success is met, but the Job ends only once no pod of it is left terminating
        # (job_controller.go delayTerminalCondition): isolating the node lets pod GC finish it.
        await c.wait_for(
            lambda: c.get_if(
                "jobs", "default", "survivor", lambda j: condition(j, "SuccessCriteriaMet")
            ),
            5,
            "SuccessCriteriaMet",
        )
        assert not condition(c.store.get("jobs", "default", "survivor"), "Complete")
        c.store.delete("nodes", None, "w1")
        await c.wait_for(
            lambda: c.get_if("jobs", "default", "survivor", lambda j: condition(j, "Complete")),
            10,
            "Complete once the old pod is gone",
        )

    run(scenario, profile=PROFILE)


def test_cronjob_fires_when_its_clock_reaches_the_schedule() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create(
            "cronjobs",
            "default",
            {
                "metadata": {"name": "tick"},
                "spec": {
                    "schedule": "* * * * *",
                    "successfulJobsHistoryLimit": 1,
                    "jobTemplate": {"spec": _job("x")["spec"]},
                },
            },
        )
        await c.hold(lambda: not c.store.list("jobs", "default")["items"], 0.3, "no job yet")
        names: list[str] = []
        for _ in range(2):
            c.controllers.clock.advance(60)
            jobs = await c.wait_for(
                lambda: [
                    j
                    for j in c.store.list("jobs", "default")["items"]
                    if j["metadata"]["name"] not in names
                ],
                5,
                "the scheduled job",
            )
            job = jobs[0]
            name = job["metadata"]["name"]
            minutes = int(name.rsplit("-", 1)[1])
            assert name == f"tick-{minutes}"
            assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
            stamp = job["metadata"]["annotations"][
                "batch.kubernetes.io/cronjob-scheduled-timestamp"
            ]
            cj = await c.wait_for(
                lambda: c.get_if(
                    "cronjobs", "default", "tick", lambda o: o["status"].get("active")
                ),
                5,
                "active",
            )
            assert cj["status"]["active"][0]["name"] == name
            assert cj["status"]["lastScheduleTime"] == stamp
            names.append(name)
            pod = (await c.wait_for(lambda name=name: _running(c, name), 5, "running"))[0]
            _exit(c, pod, "Succeeded")
            await c.wait_for(
                lambda: c.get_if(
                    "cronjobs",
                    "default",
                    "tick",
                    lambda o: (
                        not o["status"].get("active") and o["status"].get("lastSuccessfulTime")
                    ),
                ),
                5,
                "the job seen completed",
            )
        # successfulJobsHistoryLimit 1: the first job is deleted once the second completes.
        await c.wait_for(
            lambda: (
                [j["metadata"]["name"] for j in c.store.list("jobs", "default")["items"]]
                == [names[1]]
            ),
            5,
            "history cleaned",
        )
        assert int(names[1].rsplit("-", 1)[1]) == int(names[0].rsplit("-", 1)[1]) + 1
        assert c.events("SawCompletedJob", "tick")

    run(scenario, profile=PROFILE)


def test_a_finished_job_is_deleted_after_its_ttl() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create("jobs", "default", _job("brief", ttlSecondsAfterFinished=1))
        pod = (await c.wait_for(lambda: _running(c, "brief"), 5, "running"))[0]
        _exit(c, pod, "Succeeded")
        await c.wait_for(
            lambda: c.get_if("jobs", "default", "brief", lambda j: condition(j, "Complete")),
            5,
            "Complete",
        )
        # Foreground deletion: the Job goes after its pods.
        await c.wait_for(
            lambda: not c.store.list("jobs", "default")["items"] and not _pods(c, "brief"),
            10,
            "job and pods deleted after the TTL",
        )

    run(scenario, profile=PROFILE)
