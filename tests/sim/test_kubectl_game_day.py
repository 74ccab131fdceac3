"""kubectl's game-day verbs against the simulator: the answers upstream gives an admin."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from pytest_k8sdr.sim.launcher import SimCluster

Kubectl = Callable[..., Any]


def test_auth_can_i_answers_yes_for_the_admin(kubectl: Kubectl, sim_ns: str) -> None:
    assert kubectl("auth", "can-i", "create", "pods", "-n", sim_ns).stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "get", "/healthz").stdout.strip() == "yes"
    listed = kubectl("auth", "can-i", "--list", "-n", sim_ns).stdout.splitlines()
    assert listed[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert listed[1].split() == ["*.*", "[]", "[]", "[*]"]


def test_auth_whoami_names_the_kubeadm_admin(kubectl: Kubectl) -> None:
    review = json.loads(kubectl("auth", "whoami", "-o", "json").stdout)
    assert review["kind"] == "SelfSubjectReview"
    assert review["status"]["userInfo"] == {
        "username": "kubernetes-admin",
        "groups": ["kubeadm:cluster-admins", "system:authenticated"],
    }


def test_reviews_are_discovered_create_only(kubectl: Kubectl) -> None:
    table = kubectl("api-resources", "--api-group=authorization.k8s.io", "-o", "wide").stdout
    row = next(line for line in table.splitlines() if line.startswith("selfsubjectaccessreviews"))
    assert row.split()[-1] == "create"  # the VERBS column; upstream: create only
    assert "authentication.k8s.io/v1" in kubectl("api-versions").stdout.split()


def test_access_review_without_attributes_is_invalid(
    kubectl: Kubectl, sim_client: client.ApiClient
) -> None:
    authz = client.AuthorizationV1Api(sim_client)
    with pytest.raises(ApiException) as err:
        authz.create_self_subject_access_review({"spec": {}})
    assert err.value.status == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes" in err.value.body
    # A review is create-only: nothing is stored to get or list.
    listing = kubectl(
        "get", "--raw", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", check=False
    )
    assert "MethodNotAllowed" in listing.stderr


def test_logs_exec_port_forward_answer_a_clear_bad_request(
    kubectl: Kubectl, core: client.CoreV1Api, sim_ns: str
) -> None:
    containers = [{"name": "web", "image": "nginx"}]
    core.create_namespaced_pod(
        sim_ns, {"metadata": {"name": "pending"}, "spec": {"containers": containers}}
    )
    core.create_namespaced_pod(
        sim_ns,
        {"metadata": {"name": "placed"}, "spec": {"nodeName": "n1", "containers": containers}},
    )
    # kubectl port-forward refuses a pod that is not Running before it asks the server.
    core.patch_namespaced_pod_status("placed", sim_ns, {"status": {"phase": "Running"}})
    unplaced = kubectl("logs", "pending", "-n", sim_ns, check=False, timeout=15)
    assert unplaced.returncode != 0
    assert "pod pending does not have a host assigned" in unplaced.stderr
    wrong = kubectl("logs", "placed", "-c", "nope", "-n", sim_ns, check=False, timeout=15)
    assert "container nope is not valid for pod placed" in wrong.stderr
    for verb in (
        ["logs", "placed"],
        ["exec", "placed", "--", "ls"],
        ["port-forward", "pod/placed", "0:80"],
    ):
        done = kubectl("-n", sim_ns, *verb, check=False, timeout=15)
        assert done.returncode != 0, verb
        assert 'the simulated kubelet of node "n1" runs no containers' in done.stderr, verb


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """A cluster with a worker and its controllers."""
    sim = SimCluster.start(tmp_path_factory.mktemp("sim-game-day"), workers=1)
    try:
        yield sim
    finally:
        sim.stop()


def _runner(live: SimCluster) -> Callable[..., str]:
    """A runner of kubectl in namespace default of `live`: its stdout; raises when it fails."""

    def run(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["/usr/bin/kubectl", "--kubeconfig", str(live.kubeconfig_path), "-n", "default", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
            timeout=90,
        ).stdout

    return run


def test_statefulset_rollout_history_and_undo(live: SimCluster) -> None:
    run = _runner(live)

    def revisions() -> list[str]:
        lines = run("rollout", "history", "sts/db").splitlines()
        return [line.split()[0] for line in lines[2:] if line.strip()]

    run("apply", "-f", "-", stdin=STATEFULSET)
    run("rollout", "status", "sts/db", "--timeout=60s")
    run("set", "image", "sts/db", "db=postgres:17")
    run("rollout", "status", "sts/db", "--timeout=60s")
    assert revisions() == ["1", "2"]
    assert "rolled back" in run("rollout", "undo", "sts/db")
    run("rollout", "status", "sts/db", "--timeout=60s")
    image = "{.spec.template.spec.containers[0].image}"
    assert run("get", "sts", "db", "-o", f"jsonpath={image}") == "postgres:16"
    # The first template is the newest revision again, as upstream renumbers it.
    assert revisions() == ["2", "3"]
    owned = json.loads(run("get", "controllerrevisions", "-o", "json"))["items"]
    assert {r["metadata"]["ownerReferences"][0]["name"] for r in owned} == {"db"}


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.26}]}
"""


def test_deployment_rollback_reuses_the_old_replicaset_as_the_newest_revision(
    live: SimCluster,
) -> None:
    run = _runner(live)

    def revisions() -> list[str]:
        lines = run("rollout", "history", "deploy/web").splitlines()
        return [line.split()[0] for line in lines[2:] if line.strip()]

    run("apply", "-f", "-", stdin=DEPLOYMENT)
    run("rollout", "status", "deploy/web", "--timeout=60s")
    first = {s["metadata"]["name"] for s in json.loads(run("get", "rs", "-o", "json"))["items"]}
    run("set", "image", "deploy/web", "web=nginx:1.27")
    run("rollout", "status", "deploy/web", "--timeout=60s")
    assert revisions() == ["1", "2"]
    # kubectl's undo patches the template in with "creationTimestamp": null, which Go reads
    # as no timestamp: the template is revision 1's again, so its ReplicaSet is reused.
    assert "rolled back" in run("rollout", "undo", "deploy/web")
    run("rollout", "status", "deploy/web", "--timeout=60s")
    sets = json.loads(run("get", "rs", "-o", "json"))["items"]
    assert len(sets) == 2, [s["metadata"]["name"] for s in sets]
    (reused,) = [s for s in sets if s["metadata"]["name"] in first]
    annotations = reused["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    assert annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert reused["status"].get("readyReplicas") == 2
    assert revisions() == ["2", "3"]
    revision = "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
    assert run("get", "deploy", "web", "-o", f"jsonpath={revision}") == "3"
