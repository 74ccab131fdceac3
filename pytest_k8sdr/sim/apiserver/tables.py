"""`meta.k8s.io/v1` Table renderings, which `kubectl get` asks the server for.

Columns follow pkg/printers/internalversion/printers.go for the common types; other types
get NAME and AGE; custom resources their CRD's additionalPrinterColumns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def _pod_row(pod: JSON) -> list[Any]:
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return [
        meta["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        _age(meta.get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_row(node: JSON) -> list[Any]:
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown"
    if ready is not None:
        state = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", ""), "NotReady")
        if ready.get("status") == "Unknown":
            state = "NotReady"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in meta.get("labels") or {} if k.startswith(prefix))
    address = next(
        (a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
        "<none>",
    )
    version = (status.get("nodeInfo") or {}).get("kubeletVersion", "")
    return [
        meta["name"],
        state,
        ",".join(roles) or "<none>",
        _age(meta.get("creationTimestamp")),
        version,
        address,
    ]


def _workload_row(obj: JSON) -> list[Any]:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 0)
    return [
        meta["name"],
        f"{status.get('readyReplicas', 0)}/{want}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(meta.get("creationTimestamp")),
    ]


def _service_row(svc: JSON) -> list[Any]:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
        f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    return [
        meta["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", ""),
        "<none>",
        ports or "<none>",
        _age(meta.get("creationTimestamp")),
    ]


def _namespace_row(ns: JSON) -> list[Any]:
    meta = ns["metadata"]
    phase = (ns.get("status") or {}).get("phase", "")
    return [meta["name"], phase, _age(meta.get("creationTimestamp"))]


def _replicaset_row(rs: JSON) -> list[Any]:
    meta, spec, status = rs["metadata"], rs.get("spec") or {}, rs.get("status") or {}
    return [
        meta["name"],
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(meta.get("creationTimestamp")),
    ]


def _statefulset_row(sts: JSON) -> list[Any]:
    meta, spec, status = sts["metadata"], sts.get("spec") or {}, sts.get("status") or {}
    return [
        meta["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(meta.get("creationTimestamp")),
    ]


def _daemonset_row(ds: JSON) -> list[Any]:
    meta, status = ds["metadata"], ds.get("status") or {}
    return [
        meta["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        _age(meta.get("creationTimestamp")),
    ]


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


def _pv_row(pv: JSON) -> list[Any]:
    meta, spec, status = pv["metadata"], pv.get("spec") or {}, pv.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    return [
        meta["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        _age(meta.get("creationTimestamp")),
        spec.get("volumeMode") or "<unset>",
    ]


def _pvc_row(pvc: JSON) -> list[Any]:
    meta, spec, status = pvc["metadata"], pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    storage = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        storage = (status.get("capacity") or {}).get("storage", "")
    klass = spec.get("storageClassName")
    if klass is None:
        klass = (meta.get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class", "")
    return [
        meta["name"],
        phase,
        spec.get("volumeName", ""),
        storage,
        modes,
        klass,
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(meta.get("creationTimestamp")),
        spec.get("volumeMode") or "<unset>",
    ]


def _storageclass_row(sc: JSON) -> list[Any]:
    meta = sc["metadata"]
    name = meta["name"]
    if (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [
        name,
        sc.get("provisioner", ""),
        sc.get("reclaimPolicy", "Delete"),
        sc.get("volumeBindingMode", "Immediate"),
        bool(sc.get("allowVolumeExpansion")),
        _age(meta.get("creationTimestamp")),
    ]


def _csidriver_row(driver: JSON) -> list[Any]:
    meta, spec = driver["metadata"], driver.get("spec") or {}
    audiences = [t.get("audience", "") for t in spec.get("tokenRequests") or []]
    return [
        meta["name"],
        bool(spec.get("attachRequired", True)),
        bool(spec.get("podInfoOnMount")),
        bool(spec.get("storageCapacity")),
        ",".join(audiences) or "<unset>",
        bool(spec.get("requiresRepublish")),
        ",".join(spec.get("volumeLifecycleModes") or []),
        _age(meta.get("creationTimestamp")),
    ]


def _csinode_row(node: JSON) -> list[Any]:
    meta = node["metadata"]
    drivers = (node.get("spec") or {}).get("drivers") or []
    return [meta["name"], len(drivers), _age(meta.get("creationTimestamp"))]


def _volumeattachment_row(va: JSON) -> list[Any]:
    meta, spec = va["metadata"], va.get("spec") or {}
    return [
        meta["name"],
        spec.get("attacher", ""),
        (spec.get("source") or {}).get("persistentVolumeName", ""),
        spec.get("nodeName", ""),
        bool((va.get("status") or {}).get("attached")),
        _age(meta.get("creationTimestamp")),
    ]


def _priorityclass_row(pc: JSON) -> list[Any]:
    meta = pc["metadata"]
    return [
        meta["name"],
        pc.get("value", 0),
        bool(pc.get("globalDefault")),
        _age(meta.get("creationTimestamp")),
        pc.get("preemptionPolicy", ""),
    ]


def _template_parts(template: JSON) -> tuple[str, str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(
        c.get("image", "") for c in containers
    )


def _labels_text(labels: JSON | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _rc_row(rc: JSON) -> list[Any]:
    meta, spec, status = rc["metadata"], rc.get("spec") or {}, rc.get("status") or {}
    names, images = _template_parts(spec.get("template") or {})
    return [
        meta["name"],
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(meta.get("creationTimestamp")),
        names,
        images,
        _labels_text(spec.get("selector")),
    ]


def _podtemplate_row(pt: JSON) -> list[Any]:
    template = pt.get("template") or {}
    names, images = _template_parts(template)
    labels = _labels_text((template.get("metadata") or {}).get("labels"))
    return [pt["metadata"]["name"], names, images, labels]


def _quota_row(quota: JSON) -> list[Any]:
    meta, status = quota["metadata"], quota.get("status") or {}
    hard = status.get("hard") or (quota.get("spec") or {}).get("hard") or {}
    used = status.get("used") or {}
    limits = {k: v for k, v in hard.items() if k.startswith("limits.")}
    requests = {k: v for k, v in hard.items() if not k.startswith("limits.")}
    return [
        meta["name"],
        _age(meta.get("creationTimestamp")),
        ", ".join(f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(requests.items())),
        ", ".join(f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(limits.items())),
    ]


def _created_row(obj: JSON) -> list[Any]:
    # printers.go prints roles' and limit ranges' creationTimestamp as RFC 3339 UTC.
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp", "")]


def _revision_row(cr: JSON) -> list[Any]:
    meta = cr["metadata"]
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    controller = "<none>"
    if owner is not None:
        api_version = str(owner.get("apiVersion", ""))
        group = api_version.split("/")[0] if "/" in api_version else ""
        kind = str(owner.get("kind", "")).lower()
        controller = (
            f"{kind}.{group}/{owner.get('name', '')}"
            if group
            else f"{kind}/{owner.get('name', '')}"
        )
    return [meta["name"], controller, cr.get("revision", 0), _age(meta.get("creationTimestamp"))]


def _ingress_row(ing: JSON) -> list[Any]:
    meta, spec = ing["metadata"], ing.get("spec") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    lb = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(i.get("ip") or i.get("hostname", "") for i in lb)
    ports = "80, 443" if spec.get("tls") else "80"
    return [
        meta["name"],
        spec.get("ingressClassName") or "<none>",
        ",".join(hosts) or "*",
        address,
        ports,
        _age(meta.get("creationTimestamp")),
    ]


def _ingressclass_row(ic: JSON) -> list[Any]:
    meta, spec = ic["metadata"], ic.get("spec") or {}
    params = spec.get("parameters")
    shown = "<none>"
    if params:
        group = params.get("apiGroup")
        kind = f"{params.get('kind', '')}.{group}" if group else params.get("kind", "")
        shown = f"{kind}/{params.get('name', '')}"
    return [meta["name"], spec.get("controller", ""), shown, _age(meta.get("creationTimestamp"))]


def _netpol_row(np: JSON) -> list[Any]:
    meta = np["metadata"]
    selector = (np.get("spec") or {}).get("podSelector") or {}
    text = _labels_text(selector.get("matchLabels")) if selector.get("matchLabels") else "<none>"
    return [meta["name"], text, _age(meta.get("creationTimestamp"))]


def _binding_row(rb: JSON) -> list[Any]:
    meta, ref = rb["metadata"], rb.get("roleRef") or {}
    subjects = rb.get("subjects") or []

    def names(kind: str) -> str:
        out = []
        for s in subjects:
            if s.get("kind") != kind:
                continue
            if kind == "ServiceAccount":
                out.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
            else:
                out.append(s.get("name", ""))
        return ", ".join(out)

    return [
        meta["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(meta.get("creationTimestamp")),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


def _hpa_targets(spec: JSON, status: JSON) -> str:
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


def _hpa_row(hpa: JSON) -> list[Any]:
    meta, spec, status = hpa["metadata"], hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        meta["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(spec, status),
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        status.get("currentReplicas", 0),
        _age(meta.get("creationTimestamp")),
    ]


def _event_row(ev: JSON) -> list[Any]:
    meta = ev["metadata"]
    obj = ev.get("involvedObject") or {}
    source = ev.get("source") or {}
    last = ev.get("lastTimestamp") or ev.get("eventTime") or meta.get("creationTimestamp")
    first = ev.get("firstTimestamp") or ev.get("eventTime") or meta.get("creationTimestamp")
    return [
        _age(last),
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{str(obj.get('kind', '')).lower()}/{obj.get('name', '')}",
        obj.get("fieldPath", ""),
        ", ".join(v for v in (source.get("component"), source.get("host")) if v)
        or ev.get("reportingComponent", ""),
        str(ev.get("message", "")).strip(),
        _age(first),
        int(ev.get("count") or 1),
        meta["name"],
    ]


def _lease_row(lease: JSON) -> list[Any]:
    meta = lease["metadata"]
    holder = (lease.get("spec") or {}).get("holderIdentity") or "<none>"
    return [meta["name"], holder, _age(meta.get("creationTimestamp"))]


def _endpointslice_row(eps: JSON) -> list[Any]:
    meta = eps["metadata"]
    ports = ",".join(str(p.get("port", "")) for p in eps.get("ports") or []) or "<unset>"
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (
        f" + {len(addresses) - 3} more..." if len(addresses) > 3 else ""
    )
    return [
        meta["name"],
        eps.get("addressType", ""),
        ports,
        shown or "<unset>",
        _age(meta.get("creationTimestamp")),
    ]


def _pdb_row(pdb: JSON) -> list[Any]:
    meta, spec = pdb["metadata"], pdb.get("spec") or {}
    return [
        meta["name"],
        str(spec.get("minAvailable", "N/A")),
        str(spec.get("maxUnavailable", "N/A")),
        (pdb.get("status") or {}).get("disruptionsAllowed", 0),
        _age(meta.get("creationTimestamp")),
    ]


def _data_row(obj: JSON) -> list[Any]:
    meta = obj["metadata"]
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    if obj.get("kind") == "Secret" or "type" in obj:
        return [meta["name"], obj.get("type", ""), count, _age(meta.get("creationTimestamp"))]
    return [meta["name"], count, _age(meta.get("creationTimestamp"))]


def _serviceaccount_row(sa: JSON) -> list[Any]:
    meta = sa["metadata"]
    return [meta["name"], len(sa.get("secrets") or []), _age(meta.get("creationTimestamp"))]


def _endpoints_row(ep: JSON) -> list[Any]:
    meta = ep["metadata"]
    pairs = [
        f"{a.get('ip', '')}:{p.get('port', '')}"
        for subset in ep.get("subsets") or []
        for a in subset.get("addresses") or []
        for p in subset.get("ports") or [{}]
    ]
    shown = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [meta["name"], shown or "<none>", _age(meta.get("creationTimestamp"))]


def _csr_row(csr: JSON) -> list[Any]:
    """printers.go printCertificateSigningRequest and extractCSRStatus."""
    meta, spec = csr["metadata"], csr.get("spec") or {}
    status = csr.get("status") or {}
    types = {c.get("type") for c in status.get("conditions") or []}
    shown = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        shown += ",Failed"
    if status.get("certificate"):
        shown += ",Issued"
    seconds = spec.get("expirationSeconds")
    return [
        meta["name"],
        _age(meta.get("creationTimestamp")),
        spec.get("signerName") or "<none>",
        spec.get("username", ""),
        "<none>" if seconds is None else _human_duration(seconds),
        shown,
    ]


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


def _job_row(job: JSON) -> list[Any]:
    """printers.go printJob."""
    meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start = parse_rfc3339(status.get("startTime"))
    end = parse_rfc3339(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = _human_duration((end if end is not None else time.time()) - start)
    if _has_condition(job, "Complete"):
        state = "Complete"
    elif _has_condition(job, "Failed"):
        state = "Failed"
    elif meta.get("deletionTimestamp"):
        state = "Terminating"
    elif _has_condition(job, "Suspended"):
        state = "Suspended"
    elif _has_condition(job, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = _template_parts(spec.get("template") or {})
    return [
        meta["name"],
        state,
        completions,
        duration,
        _age(meta.get("creationTimestamp")),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _cronjob_row(cj: JSON) -> list[Any]:
    """printers.go printCronJob."""
    meta, spec, status = cj["metadata"], cj.get("spec") or {}, cj.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _template_parts(job_spec.get("template") or {})
    suspend = spec.get("suspend")
    return [
        meta["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") if spec.get("timeZone") is not None else "<none>",
        "<unset>" if suspend is None else ("True" if suspend else "False"),
        len(status.get("active") or []),
        _age(last) if last else "<none>",
        _age(meta.get("creationTimestamp")),
        names,
        images,
        _selector_text(job_spec.get("selector")),
    ]


_BINDING_COLUMNS = [
    _col("Name", fmt="name"),
    _col("Role"),
    _col("Age"),
    _col("Users", priority=1),
    _col("Groups", priority=1),
    _col("ServiceAccounts", priority=1),
]
_CREATED_COLUMNS = [_col("Name", fmt="name"), _col("Created At", fmt="date")]

_LAYOUTS: dict[str, tuple[list[JSON], Any]] = {
    "jobs": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Completions"),
            _col("Duration"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _job_row,
    ),
    "cronjobs": (
        [
            _col("Name", fmt="name"),
            _col("Schedule"),
            _col("Timezone"),
            _col("Suspend", "boolean"),
            _col("Active", "integer"),
            _col("Last Schedule"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _cronjob_row,
    ),
    "replicationcontrollers": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _rc_row,
    ),
    "podtemplates": (
        [_col("Name", fmt="name"), _col("Containers"), _col("Images"), _col("Pod Labels")],
        _podtemplate_row,
    ),
    "resourcequotas": (
        [_col("Name", fmt="name"), _col("Age"), _col("Request"), _col("Limit")],
        _quota_row,
    ),
    "limitranges": (_CREATED_COLUMNS, _created_row),
    "controllerrevisions": (
        [_col("Name", fmt="name"), _col("Controller"), _col("Revision", "integer"), _col("Age")],
        _revision_row,
    ),
    "ingresses": (
        [
            _col("Name", fmt="name"),
            _col("Class"),
            _col("Hosts"),
            _col("Address"),
            _col("Ports"),
            _col("Age"),
        ],
        _ingress_row,
    ),
    "ingressclasses": (
        [_col("Name", fmt="name"), _col("Controller"), _col("Parameters"), _col("Age")],
        _ingressclass_row,
    ),
    "networkpolicies": (
        [_col("Name", fmt="name"), _col("Pod-Selector"), _col("Age")],
        _netpol_row,
    ),
    "roles": (_CREATED_COLUMNS, _created_row),
    "clusterroles": (_CREATED_COLUMNS, _created_row),
    "rolebindings": (_BINDING_COLUMNS, _binding_row),
    "clusterrolebindings": (_BINDING_COLUMNS, _binding_row),
    "horizontalpodautoscalers": (
        [
            _col("Name", fmt="name"),
            _col("Reference"),
            _col("Targets"),
            _col("MinPods", "integer"),
            _col("MaxPods", "integer"),
            _col("Replicas", "integer"),
            _col("Age"),
        ],
        _hpa_row,
    ),
    "events": (
        [
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Subobject", priority=1),
            _col("Source", priority=1),
            _col("Message"),
            _col("First Seen", priority=1),
            _col("Count", "integer", priority=1),
            _col("Name", fmt="name", priority=1),
        ],
        _event_row,
    ),
    "leases": ([_col("Name", fmt="name"), _col("Holder"), _col("Age")], _lease_row),
    "certificatesigningrequests": (
        [
            _col("Name", fmt="name"),
            _col("Age"),
            _col("SignerName"),
            _col("Requestor"),
            _col("RequestedDuration"),
            _col("Condition"),
        ],
        _csr_row,
    ),
    "endpointslices": (
        [
            _col("Name", fmt="name"),
            _col("AddressType"),
            _col("Ports"),
            _col("Endpoints"),
            _col("Age"),
        ],
        _endpointslice_row,
    ),
    "poddisruptionbudgets": (
        [
            _col("Name", fmt="name"),
            _col("Min Available"),
            _col("Max Unavailable"),
            _col("Allowed Disruptions", "integer"),
            _col("Age"),
        ],
        _pdb_row,
    ),
    "configmaps": ([_col("Name", fmt="name"), _col("Data", "integer"), _col("Age")], _data_row),
    "secrets": (
        [_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")],
        _data_row,
    ),
    "serviceaccounts": (
        [_col("Name", fmt="name"), _col("Secrets", "integer"), _col("Age")],
        _serviceaccount_row,
    ),
    "endpoints": (
        [_col("Name", fmt="name"), _col("Endpoints"), _col("Age")],
        _endpoints_row,
    ),
    "persistentvolumes": (
        [
            _col("Name", fmt="name"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("Reclaim Policy"),
            _col("Status"),
            _col("Claim"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Reason"),
            _col("Age"),
            _col("VolumeMode", priority=1),
        ],
        _pv_row,
    ),
    "persistentvolumeclaims": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Age"),
            _col("VolumeMode", priority=1),
        ],
        _pvc_row,
    ),
    "storageclasses": (
        [
            _col("Name", fmt="name"),
            _col("Provisioner"),
            _col("ReclaimPolicy"),
            _col("VolumeBindingMode"),
            _col("AllowVolumeExpansion", "boolean"),
            _col("Age"),
        ],
        _storageclass_row,
    ),
    "csidrivers": (
        [
            _col("Name", fmt="name"),
            _col("AttachRequired", "boolean"),
            _col("PodInfoOnMount", "boolean"),
            _col("StorageCapacity", "boolean"),
            _col("TokenRequests"),
            _col("RequiresRepublish", "boolean"),
            _col("Modes"),
            _col("Age"),
        ],
        _csidriver_row,
    ),
    "csinodes": (
        [_col("Name", fmt="name"), _col("Drivers", "integer"), _col("Age")],
        _csinode_row,
    ),
    "volumeattachments": (
        [
            _col("Name", fmt="name"),
            _col("Attacher"),
            _col("PV"),
            _col("Node"),
            _col("Attached", "boolean"),
            _col("Age"),
        ],
        _volumeattachment_row,
    ),
    "priorityclasses": (
        [
            _col("Name", fmt="name"),
            _col("Value", "integer"),
            _col("Global-Default", "boolean"),
            _col("Age"),
            _col("PreemptionPolicy"),
        ],
        _priorityclass_row,
    ),
    "namespaces": ([_col("Name", fmt="name"), _col("Status"), _col("Age")], _namespace_row),
    "replicasets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
        ],
        _replicaset_row,
    ),
    "statefulsets": ([_col("Name", fmt="name"), _col("Ready"), _col("Age")], _statefulset_row),
    "daemonsets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
        ],
        _daemonset_row,
    ),
    "pods": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        _pod_row,
    ),
    "nodes": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
            _col("Internal-IP", priority=1),
        ],
        _node_row,
    ),
    "deployments": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
        ],
        _workload_row,
    ),
    "services": (
        [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
        ],
        _service_row,
    ),
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
    columns = [_col("Name", fmt="name")] + [
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
        columns, row_fn = _LAYOUTS.get(
            rtype.plural,
            (
                [_col("Name", fmt="name"), _col("Age")],
                lambda o: [o["metadata"]["name"], _age(o["metadata"].get("creationTimestamp"))],
            ),
        )
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
