"""fieldValidation: Strict (400 naming each unknown field), Warn (Warning headers), Ignore."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from simapi_support import raw_exchange

from pytest_k8sdr.sim.launcher import SimCluster

Kubectl = Callable[..., Any]


def _deployment(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicass": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "portz": []}]},
            },
        },
    }


def test_kubectl_apply_is_strict_by_default(kubectl: Kubectl, sim_ns: str) -> None:
    bad = kubectl("apply", "-f", "-", stdin=json.dumps(_deployment("typo", sim_ns)), check=False)
    assert bad.returncode != 0
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.replicass", unknown field "spec.template.spec.containers[0].portz"'
    ) in bad.stderr
    assert "NotFound" in kubectl("get", "deployment", "typo", "-n", sim_ns, check=False).stderr
    ssa = kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=json.dumps(_deployment("typo", sim_ns)),
        check=False,
    )
    assert ssa.returncode != 0
    assert 'strict decoding error: unknown field "spec.replicass"' in ssa.stderr


def test_warn_drops_the_fields_and_says_so(kubectl: Kubectl, sim_ns: str) -> None:
    out = kubectl(
        "apply", "--validate=warn", "-f", "-", stdin=json.dumps(_deployment("warned", sim_ns))
    )
    assert 'Warning: unknown field "spec.replicass"' in out.stderr
    assert 'Warning: unknown field "spec.template.spec.containers[0].portz"' in out.stderr
    got = json.loads(kubectl("get", "deployment", "warned", "-n", sim_ns, "-o", "json").stdout)
    assert "replicass" not in got["spec"]
    assert "portz" not in got["spec"]["template"]["spec"]["containers"][0]
    # What was stored round-trips under Strict.
    got["metadata"].pop("resourceVersion")
    kubectl("replace", "-f", "-", stdin=json.dumps(got))


def test_ignore_accepts(kubectl: Kubectl, sim_ns: str) -> None:
    out = kubectl(
        "apply", "--validate=false", "-f", "-", stdin=json.dumps(_deployment("lax", sim_ns))
    )
    assert "created" in out.stdout
    assert "Warning" not in out.stderr


def test_raw_requests_strict_and_a_bad_value(kubectl: Kubectl, sim_ns: str) -> None:
    body = json.dumps({"metadata": {"name": "cm"}, "data": {"a": "b"}, "dataa": {"c": "d"}})
    path = f"/api/v1/namespaces/{sim_ns}/configmaps"
    bad = kubectl(
        "create", "--raw", f"{path}?fieldValidation=Strict", "-f", "-", stdin=body, check=False
    )
    assert bad.returncode != 0
    assert (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "dataa"'
    ) in bad.stderr
    loose = kubectl(
        "create", "--raw", f"{path}?fieldValidation=Loose", "-f", "-", stdin=body, check=False
    )
    assert loose.returncode != 0
    assert 'fieldValidation: Unsupported value: "Loose"' in loose.stderr


def test_ignore_drops_unknown_fields_silently(kubectl: Kubectl, sim_ns: str) -> None:
    out = kubectl(
        "apply", "--validate=false", "-f", "-", stdin=json.dumps(_deployment("quiet", sim_ns))
    )
    assert "Warning" not in out.stderr
    got = json.loads(kubectl("get", "deployment", "quiet", "-n", sim_ns, "-o", "json").stdout)
    # A Deployment (a Go struct upstream) cannot hold a field it does not know.
    assert "replicass" not in got["spec"]
    assert "portz" not in got["spec"]["template"]["spec"]["containers"][0]


_UNKNOWN = '299 - "unknown field \\"dataa\\""'


@pytest.mark.parametrize("query", ["", "?fieldValidation=Warn", "?fieldValidation=Ignore"])
def test_every_write_drops_unknown_fields(sim_api: SimCluster, sim_ns: str, query: str) -> None:
    """Create, update, merge and JSON patch; no parameter is Warn (handlers/rest.go)."""
    warned = [] if "Ignore" in query else [_UNKNOWN]
    path = f"/api/v1/namespaces/{sim_ns}/configmaps"
    body = {"metadata": {"name": "cm"}, "data": {"a": "b"}, "dataa": {"c": "d"}}
    created = raw_exchange(sim_api, "POST", path + query, body)
    assert (created.status, created.warnings) == (201, warned)
    assert "dataa" not in created.body
    item = f"{path}/cm{query}"
    updated = raw_exchange(sim_api, "PUT", item, body)
    assert (updated.status, updated.warnings) == (200, warned)
    assert "dataa" not in updated.body
    merged = raw_exchange(
        sim_api, "PATCH", item, {"dataa": {"e": "f"}}, "application/merge-patch+json"
    )
    assert (merged.status, merged.warnings) == (200, warned)
    assert "dataa" not in merged.body
    ops = [{"op": "add", "path": "/dataa", "value": {"g": "h"}}]
    patched = raw_exchange(sim_api, "PATCH", item, ops, "application/json-patch+json")
    assert (patched.status, patched.warnings) == (200, warned)
    assert "dataa" not in patched.body
    stored = raw_exchange(sim_api, "GET", f"{path}/cm")
    assert stored.body["data"] == {"a": "b"}
    assert "dataa" not in stored.body


def test_strict_refuses_a_json_patch_adding_an_unknown_field(
    sim_api: SimCluster, sim_ns: str
) -> None:
    path = f"/api/v1/namespaces/{sim_ns}/configmaps"
    assert raw_exchange(sim_api, "POST", path, {"metadata": {"name": "cm"}}).status == 201
    ops = [{"op": "add", "path": "/dataa", "value": {"g": "h"}}]
    refused = raw_exchange(
        sim_api,
        "PATCH",
        f"{path}/cm?fieldValidation=Strict",
        ops,
        "application/json-patch+json",
    )
    assert refused.status == 400
    assert refused.body["message"] == 'strict decoding error: unknown field "dataa"'
