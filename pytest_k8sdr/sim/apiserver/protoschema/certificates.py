"""k8s.io/api certificates/v1: CertificateSigningRequest (kubectl certificate approve|deny)."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "certificates.CertificateSigningRequest": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "certificates.CertificateSigningRequestSpec"),
        3: ("status", "certificates.CertificateSigningRequestStatus"),
    },
    # extra (6, map<string, ExtraValue>) is left out: the server sets it, from the request.
    "certificates.CertificateSigningRequestSpec": {
        1: ("request", "bytes"),
        2: ("username", "string"),
        3: ("uid", "string"),
        4: ("groups", "[]string"),
        5: ("usages", "[]string"),
        7: ("signerName", "string"),
        8: ("expirationSeconds", "int!"),
    },
    "certificates.CertificateSigningRequestStatus": {
        1: ("conditions", "[]certificates.CertificateSigningRequestCondition"),
        2: ("certificate", "bytes"),
    },
    "certificates.CertificateSigningRequestCondition": {
        1: ("type", "string"),
        2: ("reason", "string"),
        3: ("message", "string"),
        4: ("lastUpdateTime", "time"),
        5: ("lastTransitionTime", "time"),
        6: ("status", "string"),
    },
}

KINDS: Kinds = {
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): (
        "certificates.CertificateSigningRequest"
    ),
}
