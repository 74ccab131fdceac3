"""OpenAPI v3 against kubectl: the index, per-group documents with schemas, `kubectl explain`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from simapi_support import raw_exchange

from pytest_k8sdr.sim.apiserver.registry.resources import GROUP_VERSIONS
from pytest_k8sdr.sim.apiserver.registry.reviews import REVIEW_TYPES
from pytest_k8sdr.sim.launcher import SimCluster

Kubectl = Callable[..., Any]


def test_index_lists_every_served_group_version(kubectl: Kubectl) -> None:
    index = json.loads(kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    for group, versions in {**GROUP_VERSIONS, **REVIEW_TYPES}.items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            assert key in index, key


def test_every_served_kind_has_a_schema(kubectl: Kubectl) -> None:
    for group, versions in {**GROUP_VERSIONS, **REVIEW_TYPES}.items():
        for version, types in versions.items():
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            doc = json.loads(kubectl("get", "--raw", f"/openapi/v3/{key}").stdout)
            tagged = {
                gvk["kind"]
                for schema in doc["components"]["schemas"].values()
                for gvk in schema.get("x-kubernetes-group-version-kind", [])
            }
            assert {t.kind for t in types} <= tagged, (key, {t.kind for t in types} - tagged)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pods.spec.volumes", ["KIND:       Pod", "FIELD: volumes <[]Volume>", "projected"]),
        ("deployments.spec.strategy", ["GROUP:      apps", "rollingUpdate"]),
        ("ingresses.spec.rules", ["networking.k8s.io", "http"]),
        ("hpa.spec", ["VERSION:    v2", "metrics"]),
        ("priorityclasses.value", ["FIELD: value <integer>"]),
        ("pvc.spec.accessModes", ["FIELD: accessModes <[]string>"]),
        ("jobs.spec.backoffLimit", ["GROUP:      batch", "FIELD: backoffLimit <integer>"]),
        (
            "cronjobs.spec.jobTemplate",
            ["KIND:       CronJob", "FIELD: jobTemplate <JobTemplateSpec>"],
        ),
        (
            "selfsubjectreviews.status.userInfo",
            ["GROUP:      authentication.k8s.io", "FIELD: userInfo <UserInfo>", "groups"],
        ),
        (
            "selfsubjectaccessreviews.spec.resourceAttributes",
            ["KIND:       SelfSubjectAccessReview", "verb", "namespace"],
        ),
        ("selfsubjectrulesreviews.spec.namespace", ["FIELD: namespace <string>"]),
        (
            "csr.status.conditions",
            ["GROUP:      certificates.k8s.io", "lastUpdateTime"],
        ),
    ],
)
def test_kubectl_explain(path: str, expected: list[str], kubectl: Kubectl) -> None:
    out = kubectl("explain", path).stdout
    for text in expected:
        assert text in out, out


def test_kubectl_explain_unknown_field_is_an_error(kubectl: Kubectl) -> None:
    bad = kubectl("explain", "pods.spec.volumez", check=False)
    assert bad.returncode != 0
    assert "volumez" in bad.stderr


def test_a_review_is_checked_against_its_schema(sim_api: SimCluster) -> None:
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    body = {"spec": {"resourceAttributes": {"verb": "get", "resourse": "pods"}}}
    strict = raw_exchange(sim_api, "POST", f"{path}?fieldValidation=Strict", body)
    assert strict.status == 400
    assert 'unknown field "spec.resourceAttributes.resourse"' in strict.body["message"]
    warned = raw_exchange(sim_api, "POST", path, body)
    assert warned.status == 201
    assert warned.warnings == ['299 - "unknown field \\"spec.resourceAttributes.resourse\\""']
    assert warned.body["spec"]["resourceAttributes"] == {"verb": "get"}
