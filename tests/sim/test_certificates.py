"""certificates.k8s.io/v1 CertificateSigningRequests: what an admin approves after a node repair."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

Kubectl = Callable[..., Any]
_KEY = ec.generate_private_key(ec.SECP256R1())
_NODE = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, "system:node:k8sdr-worker"),
    ]
)


def _request() -> str:
    """A kubelet's client CSR (PKCS#10, PEM), base64 as the API carries it."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_NODE).sign(_KEY, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def _certificate() -> str:
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_NODE)
        .issuer_name(_NODE)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(_KEY, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def _csr(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": _request(),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
            **spec,
        },
    }


@pytest.fixture
def certs(sim_client: client.ApiClient) -> client.CertificatesV1Api:
    return client.CertificatesV1Api(sim_client)


def test_kubectl_get_approve_and_deny(kubectl: Kubectl, certs: client.CertificatesV1Api) -> None:
    approve, deny = f"node-csr-{uuid.uuid4().hex[:8]}", f"node-csr-{uuid.uuid4().hex[:8]}"
    manifest = yaml.safe_dump_all([_csr(approve, expirationSeconds=86400), _csr(deny)])
    kubectl("apply", "-f", "-", stdin=manifest)
    table = kubectl("get", "csr", approve, deny).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ]
    rows = {line.split()[0]: line.split()[2:] for line in table[1:]}
    signer = "kubernetes.io/kube-apiserver-client-kubelet"
    assert rows[approve] == [signer, "kubernetes-admin", "24h", "Pending"]
    assert rows[deny] == [signer, "kubernetes-admin", "<none>", "Pending"]
    out = kubectl("certificate", "approve", approve).stdout
    assert f"certificatesigningrequest.certificates.k8s.io/{approve} approved" in out
    out = kubectl("certificate", "deny", deny).stdout
    assert f"certificatesigningrequest.certificates.k8s.io/{deny} denied" in out
    table = kubectl("get", "csr", approve, deny, "--no-headers").stdout.splitlines()
    assert {line.split()[0]: line.split()[-1] for line in table} == {
        approve: "Approved",
        deny: "Denied",
    }
    got = json.loads(kubectl("get", "csr", approve, "-o", "json").stdout)
    (condition,) = got["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Approved",
        "True",
        "KubectlApprove",
    )
    assert condition["lastUpdateTime"]
    assert condition["lastTransitionTime"]
    # Approved and Denied exclude each other (validation.go validateConditions); kubectl
    # itself refuses to deny an approved CSR, so the API is asked directly.
    current = certs.read_certificate_signing_request(approve)
    denied = client.V1CertificateSigningRequestCondition(status="True", type="Denied")
    current.status.conditions.append(denied)
    with pytest.raises(ApiException) as err:
        certs.replace_certificate_signing_request_approval(approve, current)
    assert err.value.status == 422
    assert "Approved and Denied conditions are mutually exclusive" in err.value.body
    selected = kubectl(
        "get", "csr", "--field-selector", f"spec.signerName={signer}", "-o", "name"
    ).stdout.split()
    assert f"certificatesigningrequest.certificates.k8s.io/{approve}" in selected


def test_discovery_and_explain(kubectl: Kubectl) -> None:
    rows = kubectl("api-resources", "--api-group=certificates.k8s.io", "--no-headers").stdout
    assert rows.split() == [
        "certificatesigningrequests",
        "csr",
        "certificates.k8s.io/v1",
        "false",
        "CertificateSigningRequest",
    ]
    explained = kubectl("explain", "csr.spec.signerName").stdout
    assert "signerName" in explained
    assert "kube-apiserver-client-kubelet" in explained


def test_create_takes_the_requester_and_checks_the_request(
    certs: client.CertificatesV1Api,
) -> None:
    name = f"csr-{uuid.uuid4().hex[:8]}"
    body = _csr(name)
    body["spec"].update(username="system:node:forged", groups=["system:masters"])
    body["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    created = certs.create_certificate_signing_request(body)
    assert created.spec.username == "kubernetes-admin"
    assert created.spec.groups == ["kubeadm:cluster-admins", "system:authenticated"]
    assert created.status.conditions is None  # never pre-approved
    bad = _csr(f"bad-{uuid.uuid4().hex[:8]}", usages=[], signerName="")
    bad["spec"]["request"] = base64.b64encode(b"not a csr").decode()
    with pytest.raises(ApiException) as err:
        certs.create_certificate_signing_request(bad)
    assert err.value.status == 422
    causes = {c["field"]: c["message"] for c in json.loads(err.value.body)["details"]["causes"]}
    assert causes["spec.request"].endswith("PEM block type must be CERTIFICATE REQUEST")
    assert causes["spec.usages"] == "Required value"
    assert causes["spec.signerName"] == "Required value"


def test_status_and_approval_subresources_keep_to_their_fields(
    certs: client.CertificatesV1Api,
) -> None:
    name = f"csr-{uuid.uuid4().hex[:8]}"
    certs.create_certificate_signing_request(_csr(name))
    # The CSR itself is immutable: an update keeps spec and status.
    current = certs.read_certificate_signing_request(name)
    current.spec.usages = ["server auth"]
    approval = client.V1CertificateSigningRequestCondition(status="True", type="Approved")
    current.status.conditions = [approval]
    kept = certs.replace_certificate_signing_request(name, current)
    assert kept.spec.usages == ["digital signature", "client auth"]
    assert kept.status.conditions is None
    # /status may not approve ...
    approved = {"status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    with pytest.raises(ApiException) as err:
        certs.patch_certificate_signing_request_status(name, approved)
    assert err.value.status == 422
    assert 'updates may not add a condition of type \\"Approved\\"' in err.value.body
    # ... /approval may, and its certificate is ignored; then the signer issues through /status.
    approved["status"]["certificate"] = _certificate()
    done = certs.patch_certificate_signing_request_approval(name, approved)
    assert [c.type for c in done.status.conditions] == ["Approved"]
    assert done.status.certificate is None
    issued = certs.patch_certificate_signing_request_status(
        name, {"status": {"certificate": _certificate()}}
    )
    assert issued.status.certificate
    assert [c.type for c in issued.status.conditions] == ["Approved"]
    with pytest.raises(ApiException) as err:
        certs.patch_certificate_signing_request_status(
            name, {"status": {"certificate": _certificate()}}
        )
    assert "updates may not modify existing certificate content" in err.value.body
    issued.status.conditions = []
    with pytest.raises(ApiException) as err:
        certs.replace_certificate_signing_request_approval(name, issued)
    assert 'updates may not remove a condition of type \\"Approved\\"' in err.value.body
