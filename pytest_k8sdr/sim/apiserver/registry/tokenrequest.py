"""The serviceaccounts/token subresource: TokenRequest (pkg/registry/core/serviceaccount/storage).

A POST answers a TokenRequest whose status.token is a JWT-shaped token with the claims
upstream issues (issuer, audiences, the account as subject, expiry). Not modelled: the
token authenticates nothing (the simulator accepts only its own bearer token) and its
signature is not verifiable; bound object references are echoed, not checked.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.store import Store
from pytest_k8sdr.sim.apiserver.registry.strategy import cause

__all__ = ["ISSUER", "register"]

ISSUER = "https://kubernetes.default.svc.cluster.local"
_MIN_SECONDS = 600  # pkg/apis/authentication/validation: expirationSeconds >= 10 minutes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenRequestHandler:
    """POST serviceaccounts/NAME/token."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, namespace: str | None, name: str, body: JSON) -> JSON:
        """The answered TokenRequest; 404 for a missing account, 422 for a short expiry."""
        account = self.store.get("serviceaccounts", namespace, name)
        spec: dict[str, Any] = dict(body.get("spec") or {})
        seconds = int(spec.get("expirationSeconds") or 3600)
        if seconds < _MIN_SECONDS:
            raise ApiError(
                422,
                "Invalid",
                f'TokenRequest.authentication.k8s.io "{name}" is invalid: spec.expirationSeconds: '
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                details={
                    "name": name,
                    "group": "authentication.k8s.io",
                    "kind": "TokenRequest",
                    "causes": [
                        cause(
                            "spec.expirationSeconds",
                            "may not specify a duration less than 10 minutes",
                        )
                    ],
                },
            )
        audiences = list(spec.get("audiences") or [ISSUER])
        now = int(time.time())
        claims = {
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "iss": ISSUER,
            "jti": secrets.token_hex(16),
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
            },
        }
        header = {"alg": "RS256", "kid": "k8sdr-sim"}
        token = ".".join(
            (
                _b64(json.dumps(header).encode()),
                _b64(json.dumps(claims, separators=(",", ":")).encode()),
                _b64(secrets.token_bytes(32)),
            )
        )
        spec.update(audiences=audiences, expirationSeconds=seconds)
        spec.setdefault("boundObjectRef", None)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now_rfc3339()},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": now_rfc3339(seconds)},
        }


def register(store: Store) -> None:
    """Serve serviceaccounts/token from `store`."""
    store.register_subresource("serviceaccounts", "token", TokenRequestHandler(store))
