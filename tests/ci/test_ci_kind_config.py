"""ci/kind-config.yaml: valid for kind, right for both kubeadm formats, equal to the fast profile.

Nothing here can run kind, so the config is checked against kind's v1alpha4 Cluster schema
(tests/ci/schemas/kind-v1alpha4-cluster.json, derived from kind's types.go), its kubeadm patches
are parsed, and kind's patch matching is modelled after pkg/internal/patch/resource.go to show
that exactly one ClusterConfiguration patch applies to each kubeadm format.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_k8sdr.backends import kind_config
from pytest_k8sdr.sim.profiles import FAST

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "ci" / "kind-config.yaml"
SCHEMA = Path(__file__).parent / "schemas" / "kind-v1alpha4-cluster.json"

V1BETA3 = "kubeadm.k8s.io/v1beta3"
V1BETA4 = "kubeadm.k8s.io/v1beta4"
KUBELET = "kubelet.config.k8s.io/v1beta1"

# What the flags must say, from the fast profile (the simulator's timings).
CONTROLLER_MANAGER = {
    "node-monitor-period": FAST.node_monitor_period,
    "node-monitor-grace-period": FAST.node_monitor_grace_period,
    "node-startup-grace-period": FAST.node_startup_grace_period,
    "node-eviction-rate": FAST.node_eviction_rate,
}
API_SERVER = {
    "default-not-ready-toleration-seconds": FAST.default_not_ready_toleration_seconds,
    "default-unreachable-toleration-seconds": FAST.default_unreachable_toleration_seconds,
}


def seconds(value: str) -> float:
    """A Go duration ("1s", "1m30s", "500ms") or a bare number, in seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load(CONFIG.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def patches(config: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The cluster-level patches by (apiVersion, kind); each must be one YAML mapping."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in config["kubeadmConfigPatches"]:
        docs = list(yaml.safe_load_all(raw))
        assert len(docs) == 1, f"a patch holds {len(docs)} documents:\n{raw}"
        doc = docs[0]
        assert isinstance(doc, dict), f"a patch is not a mapping:\n{raw}"
        key = (str(doc.get("apiVersion") or ""), str(doc.get("kind") or ""))
        assert all(key), f"a patch without apiVersion or kind would match too widely:\n{raw}"
        assert key not in found, f"two patches for {key}"
        found[key] = doc
    return found


def test_the_plugin_uses_this_file() -> None:
    # One copy: ci/kind-config.yaml is the package's own file, which the kind backend reads.
    with kind_config() as shipped:
        assert shipped.resolve() == CONFIG.resolve()
    assert CONFIG.is_symlink()


def test_valid_against_kinds_v1alpha4_schema(config: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(config, schema, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("top level", lambda c: c.update(kubeadmConfigPatch=[])),  # a typo kind would reject
        ("a node", lambda c: c["nodes"][1].update(role="infra")),
        ("apiVersion", lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3")),
    ],
)
def test_the_schema_rejects_what_kind_rejects(
    config: dict[str, Any], where: str, change: Any
) -> None:
    broken = copy.deepcopy(config)
    change(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_one_control_plane_and_three_workers(config: dict[str, Any]) -> None:
    roles = [n.get("role", "control-plane") for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    # kind names the nodes after the cluster, as the plugin expects (k8sdr-worker, ...).
    assert config["name"] == "k8sdr"


def test_patches_cover_both_kubeadm_formats_and_the_kubelet(
    patches: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert set(patches) == {
        (V1BETA3, "ClusterConfiguration"),
        (V1BETA4, "ClusterConfiguration"),
        (KUBELET, "KubeletConfiguration"),
    }


def _v1beta3_args(doc: dict[str, Any], component: str) -> dict[str, str]:
    args = doc[component]["extraArgs"]
    assert isinstance(args, dict), f"v1beta3 {component}.extraArgs must be a map"
    assert all(isinstance(v, str) for v in args.values()), "flag values must be strings"
    return dict(args)


def _v1beta4_args(doc: dict[str, Any], component: str) -> dict[str, str]:
    args = doc[component]["extraArgs"]
    assert isinstance(args, list), f"v1beta4 {component}.extraArgs must be a list"
    out: dict[str, str] = {}
    for arg in args:
        assert set(arg) == {"name", "value"}, f"v1beta4 extraArgs items are name/value: {arg}"
        assert isinstance(arg["value"], str), f"{arg['name']}: the value must be a string"
        assert arg["name"] not in out, f"{arg['name']} given twice"
        out[arg["name"]] = arg["value"]
    return out


@pytest.mark.parametrize("version", [V1BETA3, V1BETA4])
def test_control_plane_flags_equal_the_fast_profile(
    patches: dict[tuple[str, str], dict[str, Any]], version: str
) -> None:
    doc = patches[(version, "ClusterConfiguration")]
    read = _v1beta3_args if version == V1BETA3 else _v1beta4_args
    kcm = read(doc, "controllerManager")
    apiserver = read(doc, "apiServer")
    assert set(kcm) == set(CONTROLLER_MANAGER)
    assert set(apiserver) == set(API_SERVER)
    for flag, want in CONTROLLER_MANAGER.items():
        assert seconds(kcm[flag]) == pytest.approx(want), flag
    for flag, want_int in API_SERVER.items():
        assert apiserver[flag] == str(want_int), flag


def test_both_formats_say_the_same(patches: dict[tuple[str, str], dict[str, Any]]) -> None:
    v3, v4 = patches[(V1BETA3, "ClusterConfiguration")], patches[(V1BETA4, "ClusterConfiguration")]
    for component in ("controllerManager", "apiServer"):
        assert _v1beta3_args(v3, component) == _v1beta4_args(v4, component)
    assert set(v3) == set(v4)


def test_kubelet_settings_equal_the_fast_profile(
    patches: dict[tuple[str, str], dict[str, Any]],
) -> None:
    kubelet = patches[(KUBELET, "KubeletConfiguration")]
    assert kubelet["nodeLeaseDurationSeconds"] == FAST.node_lease_duration
    assert seconds(kubelet["nodeStatusUpdateFrequency"]) == FAST.node_status_update_frequency
    assert seconds(kubelet["nodeStatusReportFrequency"]) == FAST.node_status_report_frequency
    # The grace period must outlast two missed Lease renewals (upstream-observed.md).
    assert FAST.node_monitor_grace_period >= 2 * (kubelet["nodeLeaseDurationSeconds"] / 4)


def test_no_per_node_kubelet_patches(config: dict[str, Any]) -> None:
    # kubeadm join ignores a KubeletConfiguration in its --config (kubernetes/kubeadm#2008).
    for node in config["nodes"]:
        for raw in node.get("kubeadmConfigPatches", []):
            assert yaml.safe_load(raw).get("kind") != "KubeletConfiguration"


# --------------------------------------------------------------------- kind's patch matching


def _matches(target: dict[str, Any], patch: dict[str, Any]) -> bool:
    """As kind's `matches` (pkg/internal/patch/resource.go): same kind; apiVersion if set."""
    if target["kind"] != patch.get("kind"):
        return False
    if not patch.get("apiVersion"):
        return True
    group, _, version = target["apiVersion"].rpartition("/")
    p_group, _, p_version = patch["apiVersion"].rpartition("/")
    return group == p_group and (not p_version or version == p_version)


def _merge(target: Any, patch: Any, v1beta4: bool) -> Any:
    """RFC 7386, plus kind's merge by `name` of a v1beta4 extraArgs list (kubeadm_merge.go)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif key == "extraArgs" and v1beta4 and isinstance(value, list):
            merged = {a["name"]: a["value"] for a in out.get(key) or []}
            merged.update({a["name"]: a["value"] for a in value})
            out[key] = [{"name": k, "value": v} for k, v in merged.items()]
        else:
            out[key] = _merge(out.get(key), value, v1beta4)
    return out


def _generated(version: str) -> dict[str, Any]:
    """The ClusterConfiguration kind generates (pkg/cluster/internal/kubeadm/config.go), cut."""
    if version == V1BETA3:
        args: Any = {"enable-hostpath-provisioner": "true"}
        api: Any = {"runtime-config": ""}
    else:
        args = [{"name": "enable-hostpath-provisioner", "value": "true"}]
        api = [{"name": "runtime-config", "value": ""}]
    return {
        "apiVersion": version,
        "kind": "ClusterConfiguration",
        "controllerManager": {"extraArgs": args},
        "apiServer": {"extraArgs": api},
    }


@pytest.mark.parametrize("version", [V1BETA3, V1BETA4])
def test_exactly_one_patch_applies_to_each_format_and_keeps_kinds_flags(
    config: dict[str, Any], version: str
) -> None:
    target = _generated(version)
    applied = 0
    for raw in config["kubeadmConfigPatches"]:
        patch = yaml.safe_load(raw)
        if _matches(target, patch):
            applied += 1
            target = _merge(target, patch, version == V1BETA4)
    assert applied == 1
    read = _v1beta3_args if version == V1BETA3 else _v1beta4_args
    kcm = read(target, "controllerManager")
    assert kcm["enable-hostpath-provisioner"] == "true"  # kind's own flag survives
    assert seconds(kcm["node-monitor-grace-period"]) == FAST.node_monitor_grace_period
    assert read(target, "apiServer")["default-unreachable-toleration-seconds"] == "10"


def test_an_unversioned_map_patch_would_break_v1beta4() -> None:
    # Why the config does not use one patch for both: merged as RFC 7386 (kind before #4173),
    # a map replaces v1beta4's list, and kubeadm cannot decode the result.
    patch = {"kind": "ClusterConfiguration", "controllerManager": {"extraArgs": {"a": "1"}}}
    target = _generated(V1BETA4)
    assert _matches(target, patch)
    merged = _merge(target, patch, v1beta4=False)
    assert isinstance(merged["controllerManager"]["extraArgs"], dict)
