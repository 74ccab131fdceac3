"""Server-side defaulting and validation of the served types (the fields clients rely on).

Defaults follow pkg/apis/*/v1/defaults.go; validation covers what a client of the
simulator can trip over (names, required fields, selectors, immutable fields) and answers
422 Invalid with field causes as pkg/apis/*/validation does. Everything else is accepted.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_k8sdr.sim.apierrors import ApiError, invalid
from pytest_k8sdr.sim.selectors import labels_match, selector_from_label_selector
from pytest_k8sdr.sim.store import ResourceType

JSON = dict[str, Any]

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Names validated as DNS-1123 labels rather than subdomains (pkg/apis/core/validation).
_LABEL_NAMED = {"namespaces"}
_DNS1035_NAMED = {"services"}


def _cause(field: str, message: str, kind: str = "FieldValueInvalid") -> dict[str, str]:
    return {"type": kind, "message": message, "field": field}


def validate_name(rtype: ResourceType, name: str) -> list[dict[str, str]]:
    """Causes for a bad metadata.name (empty list when fine)."""
    if not name:
        return [
            _cause(
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            )
        ]
    if rtype.plural in _DNS1035_NAMED:
        ok = bool(_DNS1035_LABEL.match(name)) and len(name) <= 63
        rule = (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character"
        )
    elif rtype.plural in _LABEL_NAMED:
        ok = bool(_DNS1123_LABEL.match(name)) and len(name) <= 63
        rule = (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character"
        )
    else:
        ok = bool(_DNS1123_SUBDOMAIN.match(name)) and len(name) <= 253
        rule = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    if ok:
        return []
    return [_cause("metadata.name", f'Invalid value: "{name}": {rule}')]


def _default_container(c: JSON) -> None:
    image = str(c.get("image", ""))
    tag_part = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag_part or tag_part.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_pod_spec(spec: JSON) -> None:
    """Defaults of a PodSpec (pkg/apis/core/v1/defaults.go SetDefaults_PodSpec and friends)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    if "serviceAccountName" not in spec and "serviceAccount" in spec:
        spec["serviceAccountName"] = spec["serviceAccount"]
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)


def _default_template(obj: JSON) -> None:
    template = obj.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


def apply_defaults(rtype: ResourceType, obj: JSON) -> None:
    """Fill in the defaults upstream sets on create (and on update of the same fields)."""
    plural = rtype.plural
    spec = obj.get("spec")
    if plural == "pods":
        default_pod_spec(obj.setdefault("spec", {}))
        spec = obj["spec"]
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif plural == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _default_template(obj)
    elif plural == "replicasets":
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        _default_template(obj)
    elif plural == "statefulsets":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type", "RollingUpdate") == "RollingUpdate":
            us.setdefault("type", "RollingUpdate")
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy",
            {"whenDeleted": "Retain", "whenScaled": "Retain"},
        )
        _default_template(obj)
    elif plural == "daemonsets":
        spec = obj.setdefault("spec", {})
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type", "RollingUpdate") == "RollingUpdate":
            us.setdefault("type", "RollingUpdate")
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        _default_template(obj)
    elif plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif plural == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        name = obj.get("metadata", {}).get("name", "")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    elif plural == "secrets":
        obj.setdefault("type", "Opaque")
    elif plural == "poddisruptionbudgets":
        del spec


def validate(rtype: ResourceType, obj: JSON, old: JSON | None) -> None:
    """Raise 422 Invalid naming every bad field."""
    causes: list[dict[str, str]] = []
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    if old is None:
        causes += validate_name(rtype, name)
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str):
            causes.append(
                _cause("metadata.labels", f"Invalid value: {value!r}: label values must be strings")
            )
        elif len(value) > 63 or (
            value and not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", value)
        ):
            causes.append(
                _cause(
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
        del key
    spec = obj.get("spec") or {}
    plural = rtype.plural
    if plural == "pods":
        causes += _validate_pod_spec(spec, "spec")
        if old is not None:
            causes += _validate_pod_update(obj, old)
    elif plural in ("deployments", "replicasets", "statefulsets", "daemonsets"):
        template = spec.get("template") or {}
        causes += _validate_pod_spec(template.get("spec") or {}, "spec.template.spec")
        selector = spec.get("selector")
        if not selector:
            causes.append(_cause("spec.selector", "Required value", "FieldValueRequired"))
        else:
            reqs = selector_from_label_selector(selector)
            if not reqs:
                causes.append(
                    _cause(
                        "spec.selector", "Invalid value: empty selector is invalid for deployment"
                    )
                )
            elif not labels_match(reqs, template):
                causes.append(
                    _cause(
                        "spec.template.metadata.labels",
                        f"Invalid value: {(template.get('metadata') or {}).get('labels')}: "
                        "`selector` does not match template `labels`",
                    )
                )
            if old is not None and (old.get("spec") or {}).get("selector") != selector:
                causes.append(_cause("spec.selector", "Invalid value: field is immutable"))
        replicas = spec.get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(
                _cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
    elif plural == "services":
        for n, port in enumerate(spec.get("ports") or []):
            p = port.get("port") if isinstance(port, dict) else None
            if not isinstance(p, int) or not 0 < p < 65536:
                causes.append(
                    _cause(
                        f"spec.ports[{n}].port",
                        f"Invalid value: {p}: must be between 1 and 65535, inclusive",
                    )
                )
    if causes:
        group = rtype.group
        raise invalid(rtype.kind, name, causes, group)


def _validate_pod_spec(spec: JSON, path: str) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(_cause(f"{path}.containers", "Required value", "FieldValueRequired"))
        return causes
    seen: set[str] = set()
    for n, c in enumerate(containers):
        if not isinstance(c, dict):
            causes.append(_cause(f"{path}.containers[{n}]", "Invalid value: must be an object"))
            continue
        cname = c.get("name")
        if not cname:
            causes.append(
                _cause(f"{path}.containers[{n}].name", "Required value", "FieldValueRequired")
            )
        elif cname in seen:
            causes.append(
                _cause(
                    f"{path}.containers[{n}].name",
                    f'Duplicate value: "{cname}"',
                    "FieldValueDuplicate",
                )
            )
        else:
            seen.add(str(cname))
        if not c.get("image"):
            causes.append(
                _cause(f"{path}.containers[{n}].image", "Required value", "FieldValueRequired")
            )
    return causes


# Pod spec fields an update may change (pkg/apis/core/validation/validation.go
# ValidatePodUpdate): container images, activeDeadlineSeconds, tolerations (additions),
# terminationGracePeriodSeconds (only to shorten a deleted pod's; we accept any).
_MUTABLE_POD_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def _strip_mutable(spec: JSON) -> JSON:
    out = {k: v for k, v in spec.items() if k not in _MUTABLE_POD_SPEC}
    for key in ("containers", "initContainers"):
        if key in out:
            out[key] = [
                {ck: cv for ck, cv in c.items() if ck != "image"} if isinstance(c, dict) else c
                for c in out[key]
            ]
    return out


def _validate_pod_update(obj: JSON, old: JSON) -> list[dict[str, str]]:
    new_spec = dict(obj.get("spec") or {})
    old_spec = dict(old.get("spec") or {})
    # Binding an unbound pod by update is what the simulator's in-process scheduler may do;
    # upstream only allows it through pods/binding. Accepting it is a documented leniency.
    if not old_spec.get("nodeName"):
        new_spec.pop("nodeName", None)
        old_spec.pop("nodeName", None)
    if _strip_mutable(new_spec) != _strip_mutable(old_spec):
        return [
            _cause(
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,"
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
                "FieldValueForbidden",
            )
        ]
    return []


def method_not_allowed(verb: str, resource: str) -> ApiError:
    """405 MethodNotAllowed as upstream words it."""
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        details={"kind": resource},
    )
