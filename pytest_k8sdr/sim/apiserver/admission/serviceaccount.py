"""ServiceAccount admission (plugin/pkg/admission/serviceaccount/admission.go).

A new pod runs as spec.serviceAccountName (`default` when unset), which must exist (403
otherwise, as upstream: the serviceaccount controller creates `default` in every namespace).
Unless spec.automountServiceAccountToken or the ServiceAccount's says false, the pod gets a
projected `kube-api-access-<5 random>` volume (a bound token, the `kube-root-ca.crt` CA and
the namespace) mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
container and init container that has nothing mounted there.
"""

from __future__ import annotations

import random

from pytest_k8sdr.sim.apimachinery.errors import forbidden
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.admission import MutatingPlugin, Objects

__all__ = ["MOUNT_PATH", "NAME", "ROOT_CA_CONFIGMAP", "plugin"]

NAME = "ServiceAccount"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
# apiserver/pkg/storage/names: the generateName alphabet.
_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_PREFIX = "kube-api-access-"
# serviceaccount/admission.go: an hour, plus the 7 s the kubelet's refresh jitter adds.
_TOKEN_SECONDS = 3607


def _volume(name: str) -> JSON:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": _TOKEN_SECONDS, "path": "token"}},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def plugin(store: Objects, rng: random.Random | None = None) -> MutatingPlugin:
    """The admission plugin for pods."""
    pick = rng or random.Random()

    def admit(operation: str, pod: JSON, old: JSON | None) -> None:
        if operation != "CREATE":
            return
        meta = pod.get("metadata") or {}
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            return  # mirror pods are left alone upstream
        spec = pod.setdefault("spec", {})
        sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = sa_name
        spec["serviceAccount"] = sa_name
        ns = meta.get("namespace", "")
        account = store.find("serviceaccounts", ns, sa_name)
        if account is None:
            raise forbidden(
                "pods",
                meta.get("name", ""),
                f"error looking up service account {ns}/{sa_name}: serviceaccount "
                f'"{sa_name}" not found',
            )
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is False:
            return
        volumes = spec.get("volumes") or []
        existing = next((v["name"] for v in volumes if v.get("name", "").startswith(_PREFIX)), None)
        name = existing or _PREFIX + "".join(pick.choice(_CHARS) for _ in range(5))
        if existing is None:
            spec["volumes"] = [*volumes, _volume(name)]
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                mounts = container.get("volumeMounts") or []
                if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                    continue
                container["volumeMounts"] = [
                    *mounts,
                    {"name": name, "readOnly": True, "mountPath": MOUNT_PATH},
                ]

    return admit
