"""The certificates.k8s.io group: CertificateSigningRequests, what operators approve.

After a node is repaired its kubelet asks for certificates with CSRs and an admin answers
`kubectl certificate approve|deny NAME`, which updates the /approval subresource; a signer
writes the certificate through /status. As pkg/registry/certificates/certificates/strategy.go:
a create takes the requester from the request (the simulator's one user, `reviews.USER`) and
starts with an empty status; an update of the CSR itself changes neither spec nor status;
/approval changes only the conditions, /status the status but its Approved and Denied
conditions (preserveConditionInstances); each write
is checked by ValidateCertificateSigningRequest{Create,Update,StatusUpdate,ApprovalUpdate}
(pkg/apis/certificates/validation/validation.go).
Not modelled: signers and the csrapproving / csrsigning controllers (nothing is issued unless
a client writes status.certificate), the v1beta1 API, user extra info.
"""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar

from cryptography import x509

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.reviews import USER
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    Resource,
    Strategy,
    cause,
    forbidden,
    required,
    unsupported,
)

__all__ = ["RESOURCES", "CertificateSigningRequestStrategy"]

_GROUP = "certificates.k8s.io"
# validation.go allValidUsages, sorted as sets.String.List() lists them.
_USAGES = tuple(
    sorted(
        (
            "signing",
            "digital signature",
            "content commitment",
            "key encipherment",
            "key agreement",
            "data encipherment",
            "cert sign",
            "crl sign",
            "encipher only",
            "decipher only",
            "any",
            "server auth",
            "client auth",
            "code signing",
            "email protection",
            "s/mime",
            "ipsec end system",
            "ipsec tunnel",
            "ipsec user",
            "timestamping",
            "ocsp signing",
            "microsoft sgc",
            "netscape sgc",
        )
    )
)
_TRUE_ONLY = ("Approved", "Denied", "Failed")  # condition types whose status must be True
_APPROVAL = ("Approved", "Denied")
_LEGACY_SIGNER = "kubernetes.io/legacy-unknown"
_CERTIFICATE = "status.certificate"


def _go_bytes(data: bytes) -> str:
    """A []byte as Go's %#v prints it in a field error."""
    return "[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}"


def _decoded(value: object) -> bytes | None:
    """A base64 JSON []byte field's bytes; None when it is not base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _request_error(pem: bytes) -> str | None:
    """certificates.ParseCSR and CheckSignature: why the request is not a signed PKCS#10 CSR."""
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        return "PEM block type must be CERTIFICATE REQUEST"
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        return f"x509: {exc}"
    if not csr.is_signature_valid:
        return "x509: ECDSA verification failure"
    return None


def _certificate_error(value: object) -> str | None:
    """validateCertificate: one or more CERTIFICATE PEM blocks, each one parseable."""
    if not value:
        return None
    pem = _decoded(value)
    if pem is None or b"-----BEGIN " not in pem:
        return "must contain at least one CERTIFICATE PEM block"
    for block in pem.split(b"-----BEGIN ")[1:]:
        label = block.split(b"-----", 1)[0].decode(errors="replace")
        if label != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{label}"'
        try:
            x509.load_pem_x509_certificate(b"-----BEGIN " + block)
        except ValueError as exc:
            return f"x509: {exc}"
    return None


def _conditions(obj: JSON) -> list[JSON]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def _of_type(obj: JSON, ctype: str) -> list[JSON]:
    return [c for c in _conditions(obj) if c.get("type") == ctype]


class CertificateSigningRequestStrategy(Strategy):
    """csrStrategy, csrStatusStrategy and csrApprovalStrategy (strategy.go)."""

    own_subresources: ClassVar[frozenset[str]] = frozenset({"status", "approval"})
    track_generation: ClassVar[bool] = False

    def prepare_for_create(self, obj: JSON) -> None:
        """The requester from the request, never pre-approved: an empty status."""
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            for key in ("uid", "extra"):
                spec.pop(key, None)
            spec["username"] = USER["username"]
            spec["groups"] = list(USER["groups"])
        obj["status"] = {}

    def prepare_for_update(self, new: JSON, old: JSON, subresource: str | None) -> None:
        """The CSR is immutable but through /approval (conditions) and /status (the rest)."""
        new["spec"] = old.get("spec") or {}
        if subresource is None:
            new["status"] = old.get("status") or {}
            return
        sent = new.get("status") if isinstance(new.get("status"), dict) else {}
        assert isinstance(sent, dict)
        status = dict(old.get("status") or {})
        if subresource == "approval":
            if "conditions" in sent:
                status["conditions"] = sent["conditions"]
            else:
                status.pop("conditions", None)
        else:
            status = sent
            for ctype in _APPROVAL:
                _preserve(new, old, ctype)
        new["status"] = status
        _stamp_conditions(new, old)

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """ValidateCertificateSigningRequestCreate / ...Update of the CSR itself."""
        return _validate(obj, old, None)

    def validate_subresource(self, subresource: str, new: JSON, old: JSON) -> list[Cause]:
        """ValidateCertificateSigningRequestStatusUpdate / ...ApprovalUpdate."""
        return _validate(new, old, subresource)


def _preserve(new: JSON, old: JSON, ctype: str) -> None:
    """preserveConditionInstances: /status keeps the old conditions of `ctype` as they were.

    When it adds or removes one, validation refuses the write instead.
    """
    before = _of_type(old, ctype)
    now = [i for i, c in enumerate(_conditions(new)) if c.get("type") == ctype]
    if len(before) == len(now):
        conditions = new["status"]["conditions"]
        for i, kept in zip(now, before, strict=True):
            conditions[i] = dict(kept)


def _stamp_conditions(new: JSON, old: JSON) -> None:
    """populateConditionTimestamps: now for an unset lastUpdateTime, and lastTransitionTime."""
    now = now_rfc3339()
    before = {c.get("type"): c for c in _conditions(old)}
    for condition in _conditions(new):
        condition.setdefault("lastUpdateTime", now)
        if not condition.get("lastTransitionTime"):
            prior = before.get(condition.get("type"))
            if prior is not None and prior.get("status") == condition.get("status"):
                if prior.get("lastTransitionTime"):
                    condition["lastTransitionTime"] = prior["lastTransitionTime"]
            else:
                condition["lastTransitionTime"] = now


def _validate(obj: JSON, old: JSON | None, subresource: str | None) -> list[Cause]:
    """validateCertificateSigningRequest{,Update} with the options of the write's path."""
    causes: list[Cause] = []
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    old_spec = (old or {}).get("spec") or {}
    if old is None:  # an update keeps the spec, which was checked when it was created
        causes += _validate_spec(spec)
    elif old_spec.get("signerName") != _LEGACY_SIGNER:
        causes += _validate_spec(spec, parsed=False)
    causes += _validate_conditions(obj)
    status = obj.get("status") or {}
    old_status = (old or {}).get("status") or {}
    certificate = status.get("certificate")
    if old is None or certificate != old_status.get("certificate"):
        problem = _certificate_error(certificate)
        if problem is not None:
            causes.append(
                cause("status.certificate", f'Invalid value: "<certificate data>": {problem}')
            )
    if old is None:
        return causes
    for ctype in _TRUE_ONLY:
        if len(_of_type(obj, ctype)) < len(_of_type(old, ctype)):
            causes.append(_forbidden_change("remove", ctype))
    if subresource != "approval":
        for ctype in _APPROVAL:
            now, before = _of_type(obj, ctype), _of_type(old, ctype)
            if len(now) > len(before):
                causes.append(_forbidden_change("add", ctype))
            elif len(now) == len(before) and now != before:
                causes.append(_forbidden_change("modify", ctype))
    if certificate != old_status.get("certificate"):
        if subresource != "status":
            causes.append(forbidden(_CERTIFICATE, "updates may not set certificate content"))
        elif old_status.get("certificate"):
            causes.append(
                forbidden(_CERTIFICATE, "updates may not modify existing certificate content")
            )
    return causes


def _forbidden_change(verb: str, ctype: str) -> Cause:
    return forbidden("status.conditions", f'updates may not {verb} a condition of type "{ctype}"')


def _validate_spec(spec: JSON, *, parsed: bool = True) -> list[Cause]:
    causes: list[Cause] = []
    if parsed:
        request = _decoded(spec.get("request"))
        problem = "PEM block type must be CERTIFICATE REQUEST" if request is None else None
        if request is not None:
            problem = _request_error(request)
        if problem is not None:
            shown = _go_bytes(request or b"")
            causes.append(cause("spec.request", f"Invalid value: {shown}: {problem}"))
    usages = spec.get("usages") or []
    if not usages:
        causes.append(required("spec.usages"))
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if usage not in _USAGES:
            causes.append(unsupported(f"spec.usages[{i}]", usage, _USAGES))
        if usage in seen:
            causes.append(
                cause(f"spec.usages[{i}]", f'Duplicate value: "{usage}"', "FieldValueDuplicate")
            )
        seen.add(str(usage))
    causes += _validate_signer(str(spec.get("signerName") or ""))
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds < 600:
        causes.append(
            cause(
                "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration less than 600 seconds "
                "(10 minutes)",
            )
        )
    return causes


def _validate_signer(name: str) -> list[Cause]:
    """Core validation's ValidateSignerName: `<domain>/<path>`, and not the legacy signer."""
    field = "spec.signerName"
    if not name:
        return [required(field)]
    if name == _LEGACY_SIGNER:
        return [
            cause(
                field,
                f'Invalid value: "{name}": the legacy signerName is not allowed via this API '
                "version",
            )
        ]
    domain, _, path = name.partition("/")
    if not path or not domain or "." not in domain:
        return [
            cause(
                field,
                f'Invalid value: "{name}": must be a fully qualified domain and path of the form '
                "'example.com/signer-name'",
            )
        ]
    return []


def _validate_conditions(obj: JSON) -> list[Cause]:
    """validateConditions: typed, True for Approved/Denied/Failed, one of each, not both."""
    causes: list[Cause] = []
    seen: set[str] = set()
    approval: set[str] = set()
    for i, condition in enumerate(_conditions(obj)):
        where = f"status.conditions[{i}]"
        ctype = str(condition.get("type") or "")
        if not ctype:
            causes.append(required(f"{where}.type"))
        allowed = ("True",) if ctype in _TRUE_ONLY else ("False", "True", "Unknown")
        status = condition.get("status")
        if not status:
            causes.append(required(f"{where}.status"))
        elif status not in allowed:
            causes.append(unsupported(f"{where}.status", status, allowed))
        if ctype in _APPROVAL:
            if approval - {ctype}:
                causes.append(
                    cause(
                        f"{where}.type",
                        f'Invalid value: "{ctype}": Approved and Denied conditions are mutually '
                        "exclusive",
                    )
                )
            approval.add(ctype)
        if ctype in seen:
            causes.append(
                cause(f"{where}.type", f'Duplicate value: "{ctype}"', "FieldValueDuplicate")
            )
        seen.add(ctype)
    return causes


RESOURCES = (
    Resource(
        ResourceType(
            _GROUP,
            "v1",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            False,
            ("csr",),
            frozenset({"status", "approval"}),
            frozenset({"spec.signerName"}),
        ),
        CertificateSigningRequestStrategy,
    ),
)
