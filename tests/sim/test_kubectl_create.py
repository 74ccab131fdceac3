"""Every `kubectl create` sub-command against the simulator.

kubectl sends each typed create as protobuf; the simulator decodes it through its schema
tables. What kubectl would have sent is its own `--dry-run=client -o json` rendering of the
same command, so every field of that must come back from the server unchanged (the server
adds only defaults). Job and CronJob belong to the batch tables (not here).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdr.sim import tls

Kubectl = Callable[..., Any]
_ID = uuid.uuid4().hex[:6]


def _cases(certs: tls.ServingCerts) -> dict[str, tuple[list[str], str, bool]]:
    """Each case: (kubectl create arguments, resource to read back, namespaced)."""
    return {
        "clusterrole": (
            ["clusterrole", f"cr-{_ID}", "--verb=get,list", "--resource=pods,nodes"],
            "clusterrole",
            False,
        ),
        "clusterrole-urls": (
            ["clusterrole", f"cr-url-{_ID}", "--verb=get", "--non-resource-url=/logs/*"],
            "clusterrole",
            False,
        ),
        "clusterrolebinding": (
            [
                "clusterrolebinding",
                f"crb-{_ID}",
                "--clusterrole=view",
                "--user=jane",
                "--group=ops",
                "--serviceaccount=default:robot",
            ],
            "clusterrolebinding",
            False,
        ),
        "cronjob": (
            [
                "cronjob",
                "tick",
                "--image=busybox:1.36",
                "--schedule=*/5 * * * *",
                "--restart=OnFailure",
            ],
            "cronjob",
            True,
        ),
        "job": (["job", "once", "--image=busybox:1.36"], "job", True),
        "configmap": (["configmap", "cm", "--from-literal=a=b", "--from-literal=c=d"], "cm", True),
        "deployment": (
            ["deployment", "web", "--image=nginx:1.25", "--replicas=2", "--port=80"],
            "deployment",
            True,
        ),
        "ingress": (
            [
                "ingress",
                "ing",
                "--class=nginx",
                "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
                "--rule=bar.com/=svc2:http",
                "--default-backend=default-svc:80",
                "--annotation=a=b",
            ],
            "ingress",
            True,
        ),
        "namespace": (["namespace", f"ns-{_ID}"], "namespace", False),
        "poddisruptionbudget": (
            ["poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"],
            "pdb",
            True,
        ),
        "poddisruptionbudget-max": (
            ["poddisruptionbudget", "pdb2", "--selector=app=web", "--max-unavailable=1"],
            "pdb",
            True,
        ),
        "priorityclass": (
            [
                "priorityclass",
                f"pc-{_ID}",
                "--value=1000",
                "--description=high",
                "--preemption-policy=Never",
            ],
            "priorityclass",
            False,
        ),
        "quota": (
            ["quota", "q", "--hard=cpu=1,memory=1G,pods=2,count/deployments.apps=3"],
            "quota",
            True,
        ),
        "quota-scopes": (
            ["quota", "q2", "--hard=pods=2", "--scopes=BestEffort"],
            "quota",
            True,
        ),
        "role": (
            ["role", "reader", "--verb=get,list", "--resource=pods", "--resource-name=web"],
            "role",
            True,
        ),
        "rolebinding": (
            [
                "rolebinding",
                "rb",
                "--role=reader",
                "--user=jane",
                "--serviceaccount=default:robot",
            ],
            "rolebinding",
            True,
        ),
        "secret-generic": (
            ["secret", "generic", "s1", "--from-literal=a=b", "--type=Opaque"],
            "secret",
            True,
        ),
        "secret-docker-registry": (
            [
                "secret",
                "docker-registry",
                "s2",
                "--docker-server=registry.example.com",
                "--docker-username=u",
                "--docker-password=p",
                "--docker-email=u@example.com",
            ],
            "secret",
            True,
        ),
        "secret-tls": (
            ["secret", "tls", "s3", f"--cert={certs.cert_path}", f"--key={certs.key_path}"],
            "secret",
            True,
        ),
        "service-clusterip": (
            ["service", "clusterip", "svc-a", "--tcp=5678:8080", "--tcp=80"],
            "service",
            True,
        ),
        "service-clusterip-headless": (
            ["service", "clusterip", "svc-h", "--clusterip=None"],
            "service",
            True,
        ),
        "service-nodeport": (["service", "nodeport", "svc-n", "--tcp=5678:8080"], "service", True),
        "service-loadbalancer": (
            ["service", "loadbalancer", "svc-l", "--tcp=5678:8080"],
            "service",
            True,
        ),
        "service-externalname": (
            ["service", "externalname", "svc-e", "--external-name=bar.example.com"],
            "service",
            True,
        ),
        "serviceaccount": (["serviceaccount", "robot"], "serviceaccount", True),
    }


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tls.ServingCerts:
    return tls.generate(tmp_path_factory.mktemp("create-tls"), "127.0.0.1")


def _subset(want: Any, have: Any, path: str = "") -> list[str]:
    """Where `have` lacks or differs from what `want` holds."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path}: {have!r} is not an object"]
        return [p for k, v in want.items() for p in _subset(v, have.get(k), f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: {have!r} != {want!r}"]
        return [
            p
            for i, (w, h) in enumerate(zip(want, have, strict=True))
            for p in _subset(w, h, f"{path}[{i}]")
        ]
    return [] if want == have else [f"{path}: {have!r} != {want!r}"]


def _sent(doc: dict[str, Any]) -> dict[str, Any]:
    """The client-side rendering without the fields it leaves empty."""
    meta = doc.get("metadata") or {}
    meta.pop("creationTimestamp", None)
    if not doc.get("status"):
        doc.pop("status", None)
    template = (doc.get("spec") or {}).get("template") or {}
    (template.get("metadata") or {}).pop("creationTimestamp", None)
    return doc


@pytest.mark.parametrize(
    "case",
    sorted(_cases(tls.ServingCerts(b"", Path(), Path(), Path()))),
)
def test_create_subcommand(
    case: str, kubectl: Kubectl, sim_ns: str, certs: tls.ServingCerts
) -> None:
    args, resource, namespaced = _cases(certs)[case]
    ns = ["-n", sim_ns] if namespaced else []
    want = _sent(json.loads(kubectl("create", *args, *ns, "--dry-run=client", "-o", "json").stdout))
    out = kubectl("create", *args, *ns).stdout
    assert "created" in out, out
    name = args[2] if args[0] in ("secret", "service") else args[1]
    got = json.loads(kubectl("get", resource, name, *ns, "-o", "json").stdout)
    assert not _subset(want, got), _subset(want, got)
    if not namespaced:
        kubectl("delete", resource, name, "--wait=false")


def test_create_token(kubectl: Kubectl, sim_ns: str) -> None:
    kubectl("create", "serviceaccount", "robot", "-n", sim_ns)
    token = kubectl(
        "create", "token", "robot", "-n", sim_ns, "--audience=api", "--duration=20m"
    ).stdout.strip()
    _header, payload, _sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{sim_ns}:robot"
    assert claims["aud"] == ["api"]
    assert claims["exp"] - claims["iat"] == 1200
    missing = kubectl("create", "token", "ghost", "-n", sim_ns, check=False)
    assert missing.returncode != 0
    assert 'serviceaccounts "ghost" not found' in missing.stderr
