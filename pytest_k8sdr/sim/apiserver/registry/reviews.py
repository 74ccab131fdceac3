"""The create-only self reviews: who am I (authentication.k8s.io) and may I (authorization.k8s.io).

`kubectl auth whoami` creates a SelfSubjectReview (pkg/registry/authentication/selfsubjectreview
/rest.go: the answer is the request's user, nothing is stored); `kubectl auth can-i` creates a
SelfSubjectAccessReview, and `can-i --list` a SelfSubjectRulesReview
(pkg/registry/authorization/selfsubjectaccessreview/rest.go, .../selfsubjectrulesreview/rest.go).
The simulator accepts one bearer token and treats it as cluster-admin (see `rbac`), so every
access review is allowed and the rules are RBAC's cluster-admin rules. The user is the one
kubeadm (and so kind) writes in admin.conf: `kubernetes-admin` in `kubeadm:cluster-admins`.
Not modelled: other users, impersonation, SubjectAccessReview and TokenReview for others.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import invalid
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import cause, required

__all__ = ["REVIEWS", "REVIEW_TYPES", "USER"]

# The user behind the simulator's token (kubeadm's admin.conf user and group).
USER: JSON = {
    "username": "kubernetes-admin",
    "groups": ["kubeadm:cluster-admins", "system:authenticated"],
}
_AUTHN = "authentication.k8s.io"
_AUTHZ = "authorization.k8s.io"
# RBAC's reason for the cluster-admin binding kubeadm makes (plugin/pkg/auth/authorizer/rbac
# /rbac.go, authorizingVisitor: `RBAC: allowed by ...`).
_REASON = (
    'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole '
    '"cluster-admin" to Group "kubeadm:cluster-admins"'
)


def _answer(group: str, kind: str, body: JSON, status: JSON) -> JSON:
    """The review as sent, with its status; a review with a spec echoes it."""
    meta = dict(body.get("metadata") or {})
    meta["creationTimestamp"] = now_rfc3339()
    answer: JSON = {"kind": kind, "apiVersion": f"{group}/v1", "metadata": meta}
    if kind != "SelfSubjectReview":
        answer["spec"] = dict(body.get("spec") or {})
    answer["status"] = status
    return answer


def self_subject_review(body: JSON) -> JSON:
    """The requester's own user info."""
    return _answer(_AUTHN, "SelfSubjectReview", body, {"userInfo": dict(USER)})


def self_subject_access_review(body: JSON) -> JSON:
    """Allowed, after ValidateSelfSubjectAccessReviewSpec (pkg/apis/authorization/validation)."""
    spec = body.get("spec") or {}
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        field, why = (
            (
                "spec.nonResourceAttributes",
                "cannot be specified in combination with resourceAttributes",
            )
            if resource is not None
            else (
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
        name = (body.get("metadata") or {}).get("name", "")
        raise invalid("SelfSubjectAccessReview", name, [cause(field, why)], _AUTHZ)
    return _answer(_AUTHZ, "SelfSubjectAccessReview", body, {"allowed": True, "reason": _REASON})


def self_subject_rules_review(body: JSON) -> JSON:
    """cluster-admin's rules (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go)."""
    if not (body.get("spec") or {}).get("namespace"):
        name = (body.get("metadata") or {}).get("name", "")
        raise invalid("SelfSubjectRulesReview", name, [required("spec.namespace")], _AUTHZ)
    status = {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False,
    }
    return _answer(_AUTHZ, "SelfSubjectRulesReview", body, status)


# (group, version, plural) -> (kind, handler): POST-only, cluster-scoped, never stored.
REVIEWS: dict[tuple[str, str, str], tuple[str, Callable[[JSON], JSON]]] = {
    (_AUTHN, "v1", "selfsubjectreviews"): ("SelfSubjectReview", self_subject_review),
    (_AUTHZ, "v1", "selfsubjectaccessreviews"): (
        "SelfSubjectAccessReview",
        self_subject_access_review,
    ),
    (_AUTHZ, "v1", "selfsubjectrulesreviews"): (
        "SelfSubjectRulesReview",
        self_subject_rules_review,
    ),
}

# The same, as types for discovery (kubectl api-resources lists them, verbs ["create"]).
REVIEW_TYPES: dict[str, dict[str, list[ResourceType]]] = {}
for (_group, _version, _plural), (_kind, _) in REVIEWS.items():
    REVIEW_TYPES.setdefault(_group, {}).setdefault(_version, []).append(
        ResourceType(_group, _version, _plural, _kind, namespaced=False)
    )
