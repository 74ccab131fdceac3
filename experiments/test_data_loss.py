"""A data-loss drill: back up, destroy a namespace, restore it, verify what came back.

The answer to lost or corrupted data is a backup, restored and verified: the objects and their
data are back, the workload is Ready and traffic through the load balancer is served again.
On the simulator the backup is a snapshot of its store (`etcdctl snapshot save`); restoring it
stops the control plane, puts the snapshot back and starts it (`etcdutl snapshot restore
--bump-revision --mark-compacted`): every watch gets 410 Gone and its client lists afresh.
Elsewhere the machine inventory's `backup` commands (velero, etcdctl) do it; without them the
drill is skipped.
"""

from __future__ import annotations

import base64

import pytest

from pytest_k8sdr import Satisfied, assert_lb_serving

SETTINGS = {"greeting": "hello", "threshold": "42"}
PASSWORD = base64.b64encode(b"s3cr3t").decode()


@pytest.mark.disruptive
def test_a_deleted_namespace_comes_back_from_its_backup(
    cluster, namespace, make_workload, make_lb, backup, runbook
):
    web = make_workload("web", replicas=3)
    front = make_lb(web)
    base = f"/api/v1/namespaces/{namespace}"
    cluster.create_object(f"{base}/configmaps", config_map(namespace))
    cluster.create_object(f"{base}/secrets", secret(namespace))
    cluster.create_object(f"{base}/persistentvolumeclaims", claim(namespace))

    with runbook.phase("backup"):
        taken = backup.save(namespaces=[namespace])

    with runbook.phase("destroy"):  # the namespace, its workload, config, secrets and claims
        cluster.call(cluster.core.delete_namespace, namespace, _preload_content=False)
        cluster.wait(
            "namespaces",
            lambda s: (
                None
                if any(n["metadata"]["name"] == namespace for n in s.values())
                else Satisfied(None)
            ),
            description=f"namespace {namespace} to be deleted with everything in it",
        )

    with runbook.phase("restore"):
        backup.restore(taken)
        web.wait_ready()

    with front.probe() as probe, runbook.phase("verify"):
        settings = cluster.read_path(f"{base}/configmaps/settings")
        assert settings is not None, "the ConfigMap was not restored"
        assert settings["data"] == SETTINGS
        credentials = cluster.read_path(f"{base}/secrets/credentials")
        assert credentials is not None, "the Secret was not restored"
        assert credentials["data"] == {"password": PASSWORD}
        assert cluster.read_path(f"{base}/persistentvolumeclaims/data") is not None, (
            "the claim was not restored"
        )
        assert_lb_serving(front.lb, probe=probe)


def config_map(namespace):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": SETTINGS,
    }


def secret(namespace):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "credentials", "namespace": namespace},
        "type": "Opaque",
        "data": {"password": PASSWORD},
    }


def claim(namespace):
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
