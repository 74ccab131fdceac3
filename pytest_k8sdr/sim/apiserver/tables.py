"""`meta.k8s.io/v1` Table renderings, which `kubectl get` asks the server for.

Columns follow pkg/printers/internalversion/printers.go for the common types, each kind a
list of `Column`s (a header and how its cell is read); other types get NAME and AGE; custom
resources their CRD's additionalPrinterColumns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.apiextensions import json_path


def _age(ts: str | None) -> str:
    then = parse_rfc3339(ts)
    if then is None:
        return "<unknown>"
    secs = max(0, int(time.time() - then))
    if secs < 120:
        return f"{secs}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


@dataclass(frozen=True)
class Column:
    """One printer column: its definition and how a row's cell is read from the object."""

    name: str
    cell: Callable[[JSON], Any]
    type: str = "string"
    priority: int = 0
    format: str = ""

    def definition(self) -> JSON:
        """The Table's columnDefinitions entry."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.name,
            "priority": self.priority,
        }


def _get(obj: JSON, path: str, default: Any = "") -> Any:
    """The field at a dotted path (missing or null parents read as empty), else `default`."""
    *parents, last = path.split(".")
    for field in parents:
        obj = obj.get(field) or {}
    return obj.get(last, default)


def _field(path: str, default: Any = "") -> Callable[[JSON], Any]:
    return lambda obj: _get(obj, path, default)


def _field_or(path: str, default: str) -> Callable[[JSON], Any]:
    """The field, or `default` where it is missing, null or empty."""
    return lambda obj: _get(obj, path, None) or default


def _flag(path: str, default: bool = False) -> Callable[[JSON], bool]:
    return lambda obj: bool(_get(obj, path, default))


def _count(path: str) -> Callable[[JSON], int]:
    return lambda obj: len(_get(obj, path, None) or [])


def _of(name: str, path: str, kind: str = "integer", default: Any = 0) -> Column:
    return Column(name, _field(path, default), kind)


def _creation(obj: JSON) -> Any:
    return obj["metadata"].get("creationTimestamp")


NAME = Column("Name", lambda obj: obj["metadata"]["name"], format="name")
AGE = Column("Age", lambda obj: _age(_creation(obj)))


def _ready_of(obj: JSON) -> str:
    """READY of Deployments and StatefulSets: ready/desired."""
    return f"{_get(obj, 'status.readyReplicas', 0)}/{_get(obj, 'spec.replicas', 0)}"


def _pod_ready(pod: JSON) -> str:
    statuses = _get(pod, "status.containerStatuses", None) or []
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(_get(pod, 'spec.containers', None) or [])}"


def _pod_status(pod: JSON) -> Any:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return status.get("reason") or status.get("phase") or "Unknown"


def _pod_restarts(pod: JSON) -> int:
    statuses = _get(pod, "status.containerStatuses", None) or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def _node_status(node: JSON) -> str:
    conditions = _get(node, "status.conditions", None) or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Unknown"
    if ready is not None:
        state = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", ""), "NotReady")
        if ready.get("status") == "Unknown":
            state = "NotReady"
    if _get(node, "spec.unschedulable", None):
        state += ",SchedulingDisabled"
    return state


def _node_roles(node: JSON) -> str:
    prefix = "node-role.kubernetes.io/"
    labels = node["metadata"].get("labels") or {}
    return ",".join(sorted(k[len(prefix) :] for k in labels if k.startswith(prefix))) or "<none>"


def _node_ip(node: JSON) -> Any:
    addresses = _get(node, "status.addresses", None) or []
    return next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), "<none>")


def _service_ports(svc: JSON) -> str:
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
        f"/{p.get('protocol', 'TCP')}"
        for p in _get(svc, "spec.ports", None) or []
    )
    return ports or "<none>"


_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: list[str] | None) -> str:
    """pkg/apis/core/helper GetAccessModesAsString."""
    have = set(modes or [])
    return ",".join(short for long, short in _MODE_ABBREVIATIONS if long in have)


def _volume_phase(obj: JSON) -> Any:
    """A PV's or PVC's STATUS: Terminating while being deleted, else its phase."""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return _get(obj, "status.phase")


def _pv_claim(pv: JSON) -> str:
    ref = _get(pv, "spec.claimRef", None) or {}
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""


def _pvc_bound(read: Callable[[JSON], Any]) -> Callable[[JSON], Any]:
    """A PVC cell shown only once the claim is bound to a volume."""
    return lambda pvc: read(pvc) if _get(pvc, "spec.volumeName", None) else ""


def _pvc_class(pvc: JSON) -> Any:
    klass = _get(pvc, "spec.storageClassName", None)
    if klass is None:
        annotations = pvc["metadata"].get("annotations") or {}
        klass = annotations.get("volume.beta.kubernetes.io/storage-class", "")
    return klass


def _storageclass_name(sc: JSON) -> str:
    meta = sc["metadata"]
    name = str(meta["name"])
    if (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return name


def _csidriver_audiences(driver: JSON) -> str:
    requests = _get(driver, "spec.tokenRequests", None) or []
    return ",".join(t.get("audience", "") for t in requests) or "<unset>"


def _containers(path: str, priority: int = 1) -> tuple[Column, Column]:
    """CONTAINERS and IMAGES of the pod template at `path`."""

    def names(obj: JSON, key: str) -> str:
        containers = _get(obj, f"{path}.spec.containers", None) or []
        return ",".join(c.get(key, "") for c in containers)

    return (
        Column("Containers", lambda obj: names(obj, "name"), priority=priority),
        Column("Images", lambda obj: names(obj, "image"), priority=priority),
    )


def _labels_text(labels: JSON | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _quota_usage(limits: bool) -> Callable[[JSON], str]:
    """REQUEST (limits=False) or LIMIT of a ResourceQuota: used/hard per resource."""

    def cell(quota: JSON) -> str:
        status = quota.get("status") or {}
        hard = status.get("hard") or _get(quota, "spec.hard", None) or {}
        used = status.get("used") or {}
        shown = {k: v for k, v in hard.items() if k.startswith("limits.") == limits}
        return ", ".join(f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(shown.items()))

    return cell


def _revision_controller(cr: JSON) -> str:
    refs = cr["metadata"].get("ownerReferences") or []
    owner = next((o for o in refs if o.get("controller")), None)
    if owner is None:
        return "<none>"
    api_version = str(owner.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    kind = str(owner.get("kind", "")).lower()
    return f"{kind}.{group}/{owner.get('name', '')}" if group else f"{kind}/{owner.get('name', '')}"


def _ingress_hosts(ing: JSON) -> str:
    rules = _get(ing, "spec.rules", None) or []
    return ",".join(r.get("host") for r in rules if r.get("host")) or "*"


def _ingress_address(ing: JSON) -> str:
    lb = _get(ing, "status.loadBalancer.ingress", None) or []
    return ",".join(i.get("ip") or i.get("hostname", "") for i in lb)


def _ingressclass_parameters(ic: JSON) -> str:
    params = _get(ic, "spec.parameters", None)
    if not params:
        return "<none>"
    group = params.get("apiGroup")
    kind = f"{params.get('kind', '')}.{group}" if group else params.get("kind", "")
    return f"{kind}/{params.get('name', '')}"


def _netpol_selector(np: JSON) -> str:
    selector = _get(np, "spec.podSelector", None) or {}
    return _labels_text(selector.get("matchLabels")) if selector.get("matchLabels") else "<none>"


def _subjects(kind: str) -> Column:
    """USERS, GROUPS or SERVICEACCOUNTS of a (Cluster)RoleBinding."""

    def cell(rb: JSON) -> str:
        out = []
        for s in rb.get("subjects") or []:
            if s.get("kind") != kind:
                continue
            if kind == "ServiceAccount":
                out.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
            else:
                out.append(s.get("name", ""))
        return ", ".join(out)

    return Column(f"{kind}s", cell, priority=1)


def _ref_text(path: str) -> Callable[[JSON], str]:
    """A reference as KIND/NAME."""

    def cell(obj: JSON) -> str:
        ref = _get(obj, path, None) or {}
        return f"{ref.get('kind', '')}/{ref.get('name', '')}"

    return cell


def _hpa_targets(hpa: JSON) -> str:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    current = {
        (m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current") or {}
        for m in status.get("currentMetrics") or []
        if m.get("type") == "Resource"
    }
    parts = []
    for metric in spec.get("metrics") or []:
        if metric.get("type") != "Resource":
            parts.append(f"<{metric.get('type', '').lower()} metric>")
            continue
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        now = current.get(resource.get("name"), {})
        if target.get("averageUtilization") is not None:
            have = now.get("averageUtilization")
            shown = "<unknown>" if have is None else f"{have}%"
            want = f"{target['averageUtilization']}%"
        else:
            shown = now.get("averageValue") or "<unknown>"
            want = target.get("averageValue") or target.get("value", "")
        parts.append(f"{resource.get('name', '')}: {shown}/{want}")
    return ", ".join(parts) or "<none>"


def _event_time(field: str) -> Callable[[JSON], str]:
    """LAST SEEN / FIRST SEEN: the field, else eventTime, else creationTimestamp."""
    return lambda ev: _age(ev.get(field) or ev.get("eventTime") or _creation(ev))


def _event_object(ev: JSON) -> str:
    obj = ev.get("involvedObject") or {}
    return f"{str(obj.get('kind', '')).lower()}/{obj.get('name', '')}"


def _event_source(ev: JSON) -> Any:
    source = ev.get("source") or {}
    shown = ", ".join(v for v in (source.get("component"), source.get("host")) if v)
    return shown or ev.get("reportingComponent", "")


def _first_three(values: list[str]) -> str:
    """The first three values and how many more (printers.go formatEndpoints)."""
    more = f" + {len(values) - 3} more..." if len(values) > 3 else ""
    return ",".join(values[:3]) + more


def _endpointslice_ports(eps: JSON) -> str:
    return ",".join(str(p.get("port", "")) for p in eps.get("ports") or []) or "<unset>"


def _endpointslice_endpoints(eps: JSON) -> str:
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    return _first_three(addresses) or "<unset>"


def _endpoints(ep: JSON) -> str:
    pairs = [
        f"{a.get('ip', '')}:{p.get('port', '')}"
        for subset in ep.get("subsets") or []
        for a in subset.get("addresses") or []
        for p in subset.get("ports") or [{}]
    ]
    return _first_three(pairs) or "<none>"


def _data_count(obj: JSON) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {})


def _csr_condition(csr: JSON) -> str:
    """printers.go extractCSRStatus: Denied or Approved or Pending, then Failed and Issued."""
    status = csr.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    shown = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        shown += ",Failed"
    if status.get("certificate"):
        shown += ",Issued"
    return shown


def _csr_duration(csr: JSON) -> str:
    seconds = _get(csr, "spec.expirationSeconds", None)
    return "<none>" if seconds is None else _human_duration(seconds)


def _human_duration(secs: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration HumanDuration."""
    seconds = int(secs)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    days = hours // 24
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _selector_text(selector: JSON | None) -> str:
    """metav1.FormatLabelSelector (matchLabels, then matchExpressions)."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _has_condition(obj: JSON, ctype: str) -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _job_completions(job: JSON) -> str:
    spec = job.get("spec") or {}
    succeeded = int(_get(job, "status.succeeded", None) or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    if int(spec.get("parallelism") or 0) > 1:
        return f"{succeeded}/1 of {spec['parallelism']}"
    return f"{succeeded}/1"


def _job_duration(job: JSON) -> str:
    start = parse_rfc3339(_get(job, "status.startTime", None))
    end = parse_rfc3339(_get(job, "status.completionTime", None))
    if start is None:
        return ""
    return _human_duration((end if end is not None else time.time()) - start)


def _job_status(job: JSON) -> str:
    """printers.go printJob's STATUS."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _cronjob_suspend(cj: JSON) -> str:
    suspend = _get(cj, "spec.suspend", None)
    return "<unset>" if suspend is None else ("True" if suspend else "False")


def _cronjob_timezone(cj: JSON) -> Any:
    tz = _get(cj, "spec.timeZone", None)
    return tz if tz is not None else "<none>"


def _cronjob_last_schedule(cj: JSON) -> str:
    last = _get(cj, "status.lastScheduleTime", None)
    return _age(last) if last else "<none>"


def _selector(path: str) -> Column:
    return Column("Selector", lambda obj: _selector_text(_get(obj, path, None)), priority=1)


_BINDING = [
    NAME,
    Column("Role", _ref_text("roleRef")),
    AGE,
    _subjects("User"),
    _subjects("Group"),
    _subjects("ServiceAccount"),
]
# printers.go prints roles' and limit ranges' creationTimestamp as RFC 3339 UTC.
_CREATED = [NAME, Column("Created At", _field("metadata.creationTimestamp"), format="date")]
_DEFAULT = [NAME, AGE]

# The columns of each built-in kind (pkg/printers/internalversion/printers.go).
_LAYOUTS: dict[str, list[Column]] = {
    "jobs": [
        NAME,
        Column("Status", _job_status),
        Column("Completions", _job_completions),
        Column("Duration", _job_duration),
        AGE,
        *_containers("spec.template"),
        _selector("spec.selector"),
    ],
    "cronjobs": [
        NAME,
        Column("Schedule", _field("spec.schedule")),
        Column("Timezone", _cronjob_timezone),
        Column("Suspend", _cronjob_suspend, "boolean"),
        Column("Active", _count("status.active"), "integer"),
        Column("Last Schedule", _cronjob_last_schedule),
        AGE,
        *_containers("spec.jobTemplate.spec.template"),
        _selector("spec.jobTemplate.spec.selector"),
    ],
    "replicationcontrollers": [
        NAME,
        _of("Desired", "spec.replicas"),
        _of("Current", "status.replicas"),
        _of("Ready", "status.readyReplicas"),
        AGE,
        *_containers("spec.template"),
        Column("Selector", lambda rc: _labels_text(_get(rc, "spec.selector", None)), priority=1),
    ],
    "podtemplates": [
        NAME,
        *_containers("template", priority=0),
        Column("Pod Labels", lambda pt: _labels_text(_get(pt, "template.metadata.labels", None))),
    ],
    "resourcequotas": [
        NAME,
        AGE,
        Column("Request", _quota_usage(limits=False)),
        Column("Limit", _quota_usage(limits=True)),
    ],
    "limitranges": _CREATED,
    "controllerrevisions": [
        NAME,
        Column("Controller", _revision_controller),
        _of("Revision", "revision"),
        AGE,
    ],
    "ingresses": [
        NAME,
        Column("Class", _field_or("spec.ingressClassName", "<none>")),
        Column("Hosts", _ingress_hosts),
        Column("Address", _ingress_address),
        Column("Ports", lambda ing: "80, 443" if _get(ing, "spec.tls", None) else "80"),
        AGE,
    ],
    "ingressclasses": [
        NAME,
        Column("Controller", _field("spec.controller")),
        Column("Parameters", _ingressclass_parameters),
        AGE,
    ],
    "networkpolicies": [NAME, Column("Pod-Selector", _netpol_selector), AGE],
    "roles": _CREATED,
    "clusterroles": _CREATED,
    "rolebindings": _BINDING,
    "clusterrolebindings": _BINDING,
    "horizontalpodautoscalers": [
        NAME,
        Column("Reference", _ref_text("spec.scaleTargetRef")),
        Column("Targets", _hpa_targets),
        _of("MinPods", "spec.minReplicas", default=1),
        _of("MaxPods", "spec.maxReplicas"),
        _of("Replicas", "status.currentReplicas"),
        AGE,
    ],
    "events": [
        Column("Last Seen", _event_time("lastTimestamp")),
        Column("Type", _field("type")),
        Column("Reason", _field("reason")),
        Column("Object", _event_object),
        Column("Subobject", _field("involvedObject.fieldPath"), priority=1),
        Column("Source", _event_source, priority=1),
        Column("Message", lambda ev: str(ev.get("message", "")).strip()),
        Column("First Seen", _event_time("firstTimestamp"), priority=1),
        Column("Count", lambda ev: int(ev.get("count") or 1), "integer", priority=1),
        replace(NAME, priority=1),
    ],
    "leases": [NAME, Column("Holder", _field_or("spec.holderIdentity", "<none>")), AGE],
    # printers.go printCertificateSigningRequest.
    "certificatesigningrequests": [
        NAME,
        AGE,
        Column("SignerName", _field_or("spec.signerName", "<none>")),
        Column("Requestor", _field("spec.username")),
        Column("RequestedDuration", _csr_duration),
        Column("Condition", _csr_condition),
    ],
    "endpointslices": [
        NAME,
        Column("AddressType", _field("addressType")),
        Column("Ports", _endpointslice_ports),
        Column("Endpoints", _endpointslice_endpoints),
        AGE,
    ],
    "poddisruptionbudgets": [
        NAME,
        Column("Min Available", lambda pdb: str(_get(pdb, "spec.minAvailable", "N/A"))),
        Column("Max Unavailable", lambda pdb: str(_get(pdb, "spec.maxUnavailable", "N/A"))),
        _of("Allowed Disruptions", "status.disruptionsAllowed"),
        AGE,
    ],
    "configmaps": [NAME, Column("Data", _data_count, "integer"), AGE],
    "secrets": [NAME, Column("Type", _field("type")), Column("Data", _data_count, "integer"), AGE],
    "serviceaccounts": [NAME, Column("Secrets", _count("secrets"), "integer"), AGE],
    "endpoints": [NAME, Column("Endpoints", _endpoints), AGE],
    "persistentvolumes": [
        NAME,
        Column("Capacity", _field("spec.capacity.storage")),
        Column("Access Modes", lambda pv: _access_modes(_get(pv, "spec.accessModes", None))),
        Column("Reclaim Policy", _field("spec.persistentVolumeReclaimPolicy")),
        Column("Status", _volume_phase),
        Column("Claim", _pv_claim),
        Column("StorageClass", _field("spec.storageClassName")),
        Column("VolumeAttributesClass", _field_or("spec.volumeAttributesClassName", "<unset>")),
        Column("Reason", _field("status.reason")),
        AGE,
        Column("VolumeMode", _field_or("spec.volumeMode", "<unset>"), priority=1),
    ],
    "persistentvolumeclaims": [
        NAME,
        Column("Status", _volume_phase),
        Column("Volume", _field("spec.volumeName")),
        Column("Capacity", _pvc_bound(_field("status.capacity.storage"))),
        Column(
            "Access Modes",
            _pvc_bound(lambda pvc: _access_modes(_get(pvc, "status.accessModes", None))),
        ),
        Column("StorageClass", _pvc_class),
        Column("VolumeAttributesClass", _field_or("spec.volumeAttributesClassName", "<unset>")),
        AGE,
        Column("VolumeMode", _field_or("spec.volumeMode", "<unset>"), priority=1),
    ],
    "storageclasses": [
        replace(NAME, cell=_storageclass_name),
        Column("Provisioner", _field("provisioner")),
        Column("ReclaimPolicy", _field("reclaimPolicy", "Delete")),
        Column("VolumeBindingMode", _field("volumeBindingMode", "Immediate")),
        Column("AllowVolumeExpansion", _flag("allowVolumeExpansion"), "boolean"),
        AGE,
    ],
    "csidrivers": [
        NAME,
        Column("AttachRequired", _flag("spec.attachRequired", True), "boolean"),
        Column("PodInfoOnMount", _flag("spec.podInfoOnMount"), "boolean"),
        Column("StorageCapacity", _flag("spec.storageCapacity"), "boolean"),
        Column("TokenRequests", _csidriver_audiences),
        Column("RequiresRepublish", _flag("spec.requiresRepublish"), "boolean"),
        Column("Modes", lambda d: ",".join(_get(d, "spec.volumeLifecycleModes", None) or [])),
        AGE,
    ],
    "csinodes": [NAME, Column("Drivers", _count("spec.drivers"), "integer"), AGE],
    "volumeattachments": [
        NAME,
        Column("Attacher", _field("spec.attacher")),
        Column("PV", _field("spec.source.persistentVolumeName")),
        Column("Node", _field("spec.nodeName")),
        Column("Attached", _flag("status.attached"), "boolean"),
        AGE,
    ],
    "priorityclasses": [
        NAME,
        _of("Value", "value"),
        Column("Global-Default", _flag("globalDefault"), "boolean"),
        AGE,
        Column("PreemptionPolicy", _field("preemptionPolicy")),
    ],
    "namespaces": [NAME, Column("Status", _field("status.phase")), AGE],
    "replicasets": [
        NAME,
        _of("Desired", "spec.replicas"),
        _of("Current", "status.replicas"),
        _of("Ready", "status.readyReplicas"),
        AGE,
    ],
    "statefulsets": [NAME, Column("Ready", _ready_of), AGE],
    "daemonsets": [
        NAME,
        _of("Desired", "status.desiredNumberScheduled"),
        _of("Current", "status.currentNumberScheduled"),
        _of("Ready", "status.numberReady"),
        _of("Up-to-date", "status.updatedNumberScheduled"),
        _of("Available", "status.numberAvailable"),
        AGE,
    ],
    "pods": [
        NAME,
        Column("Ready", _pod_ready),
        Column("Status", _pod_status),
        Column("Restarts", _pod_restarts, "integer"),
        AGE,
        Column("IP", _field_or("status.podIP", "<none>"), priority=1),
        Column("Node", _field_or("spec.nodeName", "<none>"), priority=1),
    ],
    "nodes": [
        NAME,
        Column("Status", _node_status),
        Column("Roles", _node_roles),
        AGE,
        Column("Version", _field("status.nodeInfo.kubeletVersion")),
        Column("Internal-IP", _node_ip, priority=1),
    ],
    "deployments": [
        NAME,
        Column("Ready", _ready_of),
        _of("Up-to-date", "status.updatedReplicas"),
        _of("Available", "status.availableReplicas"),
        AGE,
    ],
    "services": [
        NAME,
        Column("Type", _field("spec.type", "ClusterIP")),
        Column("Cluster-IP", _field("spec.clusterIP")),
        Column("External-IP", lambda svc: "<none>"),
        Column("Port(s)", _service_ports),
        AGE,
    ],
}


_DEFAULT_CUSTOM_COLUMNS = [
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
]


def _cell(kind: str, value: Any) -> Any:
    """CellForJSONValue (apiextensions-apiserver tableconvertor.go): None when of another type."""
    if value is None:
        return None
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
        return (
            json.dumps(value, separators=(",", ":"))
            if isinstance(value, (dict, list))
            else (str(value).lower() if isinstance(value, bool) else str(value))
        )
    if kind == "date" and isinstance(value, str):
        return _age(value) if parse_rfc3339(value) is not None else "<invalid>"
    return None


def _custom_layout(printer_columns: list[JSON]) -> tuple[list[JSON], Callable[[JSON], list[Any]]]:
    """A CRD's additionalPrinterColumns as tableconvertor.go renders them.

    NAME first; AGE alone when the version declares none.
    """
    defs = printer_columns or _DEFAULT_CUSTOM_COLUMNS
    columns = [NAME.definition()] + [
        {
            "name": c.get("name", ""),
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description")
            or f"Custom resource definition column (in JSONPath format): {c.get('jsonPath')}",
            "priority": int(c.get("priority", 0)),
        }
        for c in defs
    ]

    def row(obj: JSON) -> list[Any]:
        return [obj["metadata"]["name"]] + [
            _cell(str(c.get("type", "string")), json_path(obj, str(c.get("jsonPath", ""))))
            for c in defs
        ]

    return columns, row


def table_for(
    rtype: ResourceType,
    doc: JSON,
    include_object: str | None,
    printer_columns: list[JSON] | None = None,
) -> JSON:
    """A Table for a list or single object; rows carry PartialObjectMetadata by default.

    `printer_columns`: a custom resource's additionalPrinterColumns (None: a built-in kind).
    """
    items = doc.get("items") if doc.get("kind", "").endswith("List") else [doc]
    if printer_columns is not None:
        columns, row_fn = _custom_layout(printer_columns)
    else:
        layout = _LAYOUTS.get(rtype.plural, _DEFAULT)
        columns = [c.definition() for c in layout]

        def row_fn(obj: JSON) -> list[Any]:
            return [c.cell(obj) for c in layout]

    rows = []
    for item in items or []:
        if include_object == "Object":
            obj: JSON = item
        elif include_object == "None":
            obj = {}
        else:
            obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        rows.append({"cells": row_fn(item), "object": obj})
    meta: JSON = {"resourceVersion": (doc.get("metadata") or {}).get("resourceVersion", "")}
    if (doc.get("metadata") or {}).get("continue"):
        meta["continue"] = doc["metadata"]["continue"]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
