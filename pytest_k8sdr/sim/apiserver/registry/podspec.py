"""PodSpec defaults and validation, shared by Pods and the pod templates of workloads."""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.strategy import Cause, cause

__all__ = ["default_pod_spec", "default_template", "validate_pod_spec"]


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


def default_template(obj: JSON) -> None:
    """Defaults of a workload's spec.template."""
    template = obj.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


def validate_pod_spec(spec: JSON, path: str) -> list[Cause]:
    """Causes for missing or duplicate containers and missing images."""
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(cause(f"{path}.containers", "Required value", "FieldValueRequired"))
        return causes
    seen: set[str] = set()
    for n, c in enumerate(containers):
        if not isinstance(c, dict):
            causes.append(cause(f"{path}.containers[{n}]", "Invalid value: must be an object"))
            continue
        cname = c.get("name")
        if not cname:
            causes.append(
                cause(f"{path}.containers[{n}].name", "Required value", "FieldValueRequired")
            )
        elif cname in seen:
            causes.append(
                cause(
                    f"{path}.containers[{n}].name",
                    f'Duplicate value: "{cname}"',
                    "FieldValueDuplicate",
                )
            )
        else:
            seen.add(str(cname))
        if not c.get("image"):
            causes.append(
                cause(f"{path}.containers[{n}].image", "Required value", "FieldValueRequired")
            )
    return causes
