"""The simulated Kubernetes API server's HTTP layer: the real REST API over the registry.

Served by `controlplane` (`python -m pytest_k8sdr.sim.controlplane`) together with the
controllers. Writes take `fieldManager` (default: the User-Agent up to its first `/`, as
upstream, recorded only on objects that already have managedFields), `dryRun=All` and,
for server-side apply (`application/apply-patch+yaml`), `force`.
Custom resources are JSON and YAML only, as upstream: a protobuf body is 415, an Accept naming
neither 406. Not modelled: protobuf responses (request bodies of the kinds kubectl sends are
decoded), authorization (any valid token is cluster-admin), the legacy `/api/v1/watch/...`
paths.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from aiohttp import web

from pytest_k8sdr.sim.apimachinery.errors import ApiError, bad_request, method_not_allowed
from pytest_k8sdr.sim.apimachinery.patch import APPLY_PATCH, PATCH_TYPES
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver import discovery
from pytest_k8sdr.sim.apiserver.protobuf import decode_protobuf_body
from pytest_k8sdr.sim.apiserver.registry.kubeletproxy import KUBELET_SUBRESOURCES, kubelet_refusal
from pytest_k8sdr.sim.apiserver.registry.reviews import REVIEW_TYPES, REVIEWS
from pytest_k8sdr.sim.apiserver.registry.store import Store, WriteOptions
from pytest_k8sdr.sim.apiserver.registry.strategy import Version
from pytest_k8sdr.sim.apiserver.tables import table_for
from pytest_k8sdr.sim.apiserver.watch import (
    JSON_CT,
    WatchSettings,
    int_param,
    serve_watch,
    truthy,
)
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["ApiServer", "ControllerSwitch", "ServerSettings"]

log = logging.getLogger("pytest_k8sdr.sim.apiserver")


class ControllerSwitch(Protocol):
    """What the control API switches: the controller manager of the same process."""

    def states(self) -> dict[str, bool]:
        """Whether each switchable name runs, by name."""

    def set(self, name: str, *, enabled: bool) -> bool:
        """Switch `name` on or off; returns whether anything changed."""

    def advance_clock(self, seconds: float) -> float:
        """Move the controllers' clock forward; returns its total offset."""


@dataclass
class ServerSettings:
    """How one API server behaves; all timings in seconds."""

    token: str
    profile: Profile
    history_window: float = 300.0
    history_max: int = 500_000
    bookmark_interval: float = 60.0
    min_request_timeout: float = 1800.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    disabled_controllers: frozenset[str] = frozenset()

    @property
    def watch(self) -> WatchSettings:
        """How watch streams end."""
        return WatchSettings(
            self.bookmark_interval, self.min_request_timeout, self.faults.watch_cut_seconds
        )


def _status_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after and err.retry_after > 0:
        # Retry-After only when retryAfterSeconds > 0 (apiserver responsewriters/writers.go).
        headers["Retry-After"] = str(err.retry_after)
    return web.Response(
        status=err.code,
        body=json.dumps(err.status()).encode(),
        content_type=JSON_CT,
        headers=headers,
    )


def _json_response(body: Any, status: int = 200) -> web.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return web.Response(status=status, body=raw, content_type=JSON_CT)


_FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


def _check_fields(
    request: web.Request, rtype: ResourceType, body: object, *, patch: bool
) -> list[str]:
    """The `fieldValidation` of a write: drop a built-in kind's unknown fields from `body`.

    As apiserver's decoding (handlers/rest.go fieldValidation: an absent parameter is Warn;
    handlers/create.go, update.go, patch.go): the Go types cannot hold an unknown field, so
    it is dropped whatever the mode; Warn answers a Warning header per field (the returned
    texts), Ignore says nothing, Strict refuses with 400 `<Kind> in version "v1" cannot be
    handled as a <Kind>: strict decoding error: unknown field "spec.x"` (a patch: `strict
    decoding error: ...`). Protobuf bodies carry only known fields.
    """
    mode = request.query.get("fieldValidation", "") or "Warn"
    if mode not in _FIELD_VALIDATION:
        listed = ", ".join(f'"{m}"' for m in _FIELD_VALIDATION)
        raise bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values: {listed}'
        )
    if "protobuf" in request.content_type:
        return []
    view: Version | None = request[_VIEW]
    shown = rtype if view is None else view.type
    unknown = discovery.unknown_fields(
        shown.group, shown.version, shown.kind, body, prune=mode != "Strict"
    )
    if not unknown or mode == "Ignore":
        return []
    problems = [f'unknown field "{f}"' for f in unknown]
    if mode == "Warn":
        return problems
    detail = "strict decoding error: " + ", ".join(problems)
    if not patch:
        kind = shown.kind
        detail = f'{kind} in version "{shown.version}" cannot be handled as a {kind}: {detail}'
    raise bad_request(detail)


def _warn(response: web.Response, warnings: list[str]) -> web.Response:
    """Add an RFC 7234 Warning header (code 299) per warning, as apiserver's warning recorder."""
    for text in warnings:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def _success_status(code: int, details: JSON | None = None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiServer:
    """The aiohttp application around one Store."""

    def __init__(self, store: Store, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        self._token = settings.token.encode()
        self._rng = random.Random()
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        # Set by serve() once the controllers run: /k8sdr/v1/controllers switches them.
        self.controllers: ControllerSwitch | None = None
        # Authenticated requests by (User-Agent, verb), as an audit log would count them:
        # GET /k8sdr/v1/requests answers them (the dry run's zero-write proof reads it).
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    # -- entry ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if not self._authenticated(request):
            return _status_response(ApiError(401, "Unauthorized", "Unauthorized"))
        if path.startswith(("/api/", "/apis/")) or path in ("/api", "/apis"):
            self.requests[(request.headers.get("User-Agent", ""), _verb(request))] += 1
        try:
            faults = self.settings.faults
            if faults.enabled and path.startswith(("/api/", "/apis/")):
                if faults.latency_ms:
                    await asyncio.sleep(faults.latency_ms / 1000.0)
                code = faults.pick_error(self._rng)
                if code == 500:
                    raise ApiError(500, "InternalError", "Internal error occurred: injected fault")
                if code == 429:
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "the server has received too many requests and has asked us to try "
                        "again later",
                        retry_after=faults.retry_after or 1,
                    )
            return await self._route(request)
        except ApiError as err:
            return _status_response(err)
        except Exception as exc:  # an unexpected bug answers 500 as upstream would
            log.exception("internal error serving %s %s", request.method, path)
            return _status_response(
                ApiError(500, "InternalError", f"Internal error occurred: {exc}")
            )

    async def _control(self, request: web.Request, parts: list[str]) -> web.Response:
        """The simulator's own control API (not Kubernetes'): switch controllers at runtime.

        GET /k8sdr/v1/controllers: {"controllers": {name: enabled}};
        PUT /k8sdr/v1/controllers/NAME with {"enabled": bool}: switch one, answers the states;
        GET /k8sdr/v1/requests: {"requests": [{"userAgent", "verb", "count"}]}, every API
        request since the server started;
        POST /k8sdr/v1/clock with {"advance": seconds}: move the controllers' clock (CronJob
        schedules) forward, answers {"offset": total seconds};
        GET /k8sdr/v1/snapshot: the whole store at its current resourceVersion, in the durable
        store's snapshot format (what `etcdctl snapshot save` receives from etcd).
        """
        if parts == ["v1", "snapshot"] and request.method == "GET":
            body = self.store.storage.snapshot_bytes()
            return web.Response(body=body, content_type="application/octet-stream")
        if parts == ["v1", "clock"] and self.controllers is not None:
            if request.method != "POST":
                raise method_not_allowed()
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError as exc:
                raise bad_request(f"body is not JSON: {exc}") from exc
            step = body.get("advance") if isinstance(body, dict) else None
            if isinstance(step, bool) or not isinstance(step, int | float) or step < 0:
                raise bad_request('body must be {"advance": seconds >= 0}')
            return _json_response({"offset": self.controllers.advance_clock(float(step))})
        if parts == ["v1", "requests"] and request.method == "GET":
            counted = [
                {"userAgent": agent, "verb": verb, "count": count}
                for (agent, verb), count in sorted(self.requests.items())
            ]
            return _json_response({"requests": counted})
        if parts[:2] != ["v1", "controllers"] or len(parts) > 3 or self.controllers is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        manager = self.controllers
        if len(parts) == 2:
            if request.method != "GET":
                raise method_not_allowed()
            return _json_response({"controllers": manager.states()})
        name = parts[2]
        if name not in manager.states():
            accepted = ", ".join(manager.states())
            raise ApiError(404, "NotFound", f"unknown controller {name!r}; accepted: {accepted}")
        if request.method == "GET":
            return _json_response({"name": name, "enabled": manager.states()[name]})
        if request.method not in ("PUT", "PATCH"):
            raise method_not_allowed()
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            raise bad_request(f"body is not JSON: {exc}") from exc
        enabled = body.get("enabled") if isinstance(body, dict) else None
        if not isinstance(enabled, bool):
            raise bad_request('body must be {"enabled": true|false}')
        changed = manager.set(name, enabled=enabled)
        if changed:
            log.warning("controller %s switched %s", name, "on" if enabled else "off")
        return _json_response({"name": name, "enabled": enabled, "changed": changed})

    def _serves_subresource(self, plural: str, sub: str) -> bool:
        return self.store.subresource_handler(plural, sub) is not None

    def _authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self._token)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/version"]})
        head = parts[0]
        if head == "version" and len(parts) == 1:
            return _json_response(discovery.KUBE_VERSION)
        if head == "openapi":
            return _json_response(
                discovery.openapi(parts[1:], self._group_versions(), self.store.custom)
            )
        if head == "k8sdr":
            return await self._control(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return _json_response(discovery.api_versions(request.host))
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json_response(discovery.api_group_list(self._group_versions()))
            if len(parts) == 2:
                return _json_response(discovery.api_group(parts[1], self._group_versions()))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if version in REVIEW_TYPES.get(group, {}):
            return await self._review(request, group, version, rest)
        store = self.store
        if not store.serves_group_version(group, version):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if request.method != "GET":
                raise method_not_allowed()
            return _json_response(
                discovery.resource_list(
                    group, version, self._serves_subresource, store.group_versions(), store.custom
                )
            )
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and store.served(group, version, rest[2]) is not None
        ):
            namespace = rest[1]
            rest = rest[2:]
        found = store.served(group, version, rest[0])
        if found is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rtype, view = found
        if namespace is not None and not rtype.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        request[_VIEW] = view
        if sub != "scale" and store.is_custom(rtype):
            _negotiate_custom(request)
        if name is None:
            response = await self._collection(request, rtype, namespace)
        else:
            response = await self._object(request, rtype, namespace, name, sub)
        if view is not None and isinstance(response, web.Response) and response.body:
            raw = response.body
            assert isinstance(raw, bytes)
            response.body = _external_body(rtype, view, raw)
        return response

    def _group_versions(self) -> dict[str, dict[str, list[ResourceType]]]:
        """The store's group/versions and the self reviews' (for discovery and OpenAPI)."""
        merged = {g: dict(vs) for g, vs in self.store.group_versions().items()}
        for group, versions in REVIEW_TYPES.items():
            for version, types in versions.items():
                merged.setdefault(group, {})[version] = [
                    *merged.get(group, {}).get(version, []),
                    *types,
                ]
        return merged

    async def _review(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.Response:
        """The review groups: their APIResourceList, and POST of a self review."""
        if not rest:
            if request.method != "GET":
                raise method_not_allowed()
            return _json_response(
                discovery.resource_list(
                    group, version, self._serves_subresource, self._group_versions(), {}
                )
            )
        served = REVIEWS.get((group, version, rest[0]))
        if served is None or len(rest) > 1:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if request.method != "POST":
            raise method_not_allowed()
        kind, handler = served
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        sent = body.get("kind")
        if sent and sent != kind:
            raise bad_request(f"the body of the request is a {sent}, not a {kind}")
        request[_VIEW] = None
        rtype = ResourceType(group, version, rest[0], kind, namespaced=False)
        warnings = _check_fields(request, rtype, body, patch=False)
        return _warn(_json_response(handler(body), 201), warnings)

    # -- bodies ----------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type or JSON_CT
        if not raw:
            return None
        if "protobuf" in ctype or "cbor" in ctype:
            return decode_protobuf_body(raw)
        if not (
            ctype in (JSON_CT, "*/*", "application/octet-stream")
            or ctype.endswith(("+json", "yaml"))
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{JSON_CT}, application/yaml, application/vnd.kubernetes.protobuf",
            )
        try:
            if ctype.endswith("yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the request body could not be decoded: {exc}") from exc

    @staticmethod
    def _write_options(request: web.Request, *, apply: bool = False) -> WriteOptions:
        """fieldManager, dryRun and force as apiserver's handlers read and validate them."""
        q = request.query
        dry_run = q.getall("dryRun", [])
        if dry_run and dry_run != ["All"]:
            raise ApiError(
                422,
                "Invalid",
                f'dryRun: Unsupported value: {dry_run!r}: supported values: "All"',
            )
        manager = q.get("fieldManager", "")
        if len(manager) > 128 or not manager.isprintable():
            raise ApiError(
                422,
                "Invalid",
                "fieldManager: Invalid value: the field manager must be at most 128 printable "
                "characters",
            )
        force = q.get("force")
        if apply and not manager:
            # apimachinery/pkg/apis/meta/v1/validation ValidatePatchOptions.
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        if force is not None and not apply:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified '
                "for non-apply patch",
            )
        named = bool(manager)
        if not named:
            # handlers/rest.go prefixFromUserAgent.
            agent = request.headers.get("User-Agent", "").split("/", 1)[0]
            manager = "".join(c for c in agent if c.isprintable())[:128]
        return WriteOptions(
            manager=manager, dry_run=bool(dry_run), force=truthy(force), record=named
        )

    def _maybe_table(self, request: web.Request, rtype: ResourceType, raw: bytes) -> bytes:
        accept = request.headers.get("Accept", "")
        if "as=Table" not in accept:
            return raw
        custom = self.store.custom.get(rtype.key)
        view: Version | None = request[_VIEW]
        columns = None
        if custom is not None:
            columns = custom.columns.get(rtype.version if view is None else view.type.version)
        return json.dumps(
            table_for(rtype, json.loads(raw), request.query.get("includeObject"), columns)
        ).encode()

    # -- collections ------------------------------------------------------------------

    async def _collection(
        self, request: web.Request, rtype: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        method = request.method
        q = request.query
        store = self.store
        if method == "GET":
            if truthy(q.get("watch")):
                return await serve_watch(
                    request,
                    self.store,
                    rtype,
                    namespace,
                    self.settings.watch,
                    self._watch_tasks,
                    view=request[_VIEW],
                )
            raw = store.storage.list_raw(
                rtype.key,
                namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
                limit=int_param(q, "limit"),
                continue_token=q.get("continue") or None,
            )
            return _json_response(self._maybe_table(request, rtype, raw))
        if method == "POST":
            wopts = self._write_options(request)
            body = await self._body(request)
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            _check_kind(rtype, body)
            warnings = _check_fields(request, rtype, body, patch=False)
            body = _internal_body(request, body)
            entry = store.create_entry(rtype.key, namespace, body, opts=wopts)
            return _warn(_json_response(entry.raw, 201), warnings)
        if method == "DELETE":
            dry_run = self._write_options(request).dry_run
            opts = await self._delete_options(request)
            listing = store.list(
                rtype.key,
                namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
            )
            for item in listing["items"]:
                meta = item["metadata"]
                with contextlib.suppress(ApiError):
                    store.delete_entry(
                        rtype.key, meta.get("namespace"), meta["name"], **opts, dry_run=dry_run
                    )
            return _json_response(listing)
        raise method_not_allowed()

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        body = await self._body(request) if request.can_read_body else None
        body = body if isinstance(body, dict) else {}
        grace = body.get("gracePeriodSeconds")
        if grace is None:
            grace = int_param(q, "gracePeriodSeconds")
        policy = body.get("propagationPolicy") or q.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        if orphan is None and q.get("orphanDependents") is not None:
            orphan = truthy(q.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        return {
            "grace_period_seconds": None if grace is None else int(grace),
            "propagation_policy": policy,
            "preconditions": body.get("preconditions"),
        }

    # -- objects ----------------------------------------------------------------------

    async def _object(
        self,
        request: web.Request,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        sub: str | None,
    ) -> web.StreamResponse:
        if rtype.namespaced and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        store = self.store
        method = request.method
        plural = rtype.key
        if plural == "pods" and sub in KUBELET_SUBRESOURCES:
            raise kubelet_refusal(store.get("pods", namespace, name), sub, request.query)
        if (
            sub is not None
            and sub not in rtype.subresources
            and not (plural == "namespaces" and sub == "finalize")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub in ("eviction", "binding", "token"):
            if method != "POST":
                raise method_not_allowed()
            return await self._post_subresource(request, rtype, namespace, name, sub)
        if sub == "scale":
            return await self._scale(request, rtype, namespace, name)
        if method == "GET":
            raw = store.get_raw(plural, namespace, name)
            return _json_response(self._maybe_table(request, rtype, raw))
        if method == "PUT":
            wopts = self._write_options(request)
            body = await self._body(request)
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            _check_kind(rtype, body)
            warnings = _check_fields(request, rtype, body, patch=False)
            body = _internal_body(request, body)
            if sub == "finalize":
                return self._finalize_namespace(name, body)
            entry = store.update_entry(plural, namespace, name, body, subresource=sub, opts=wopts)
            return _warn(_json_response(entry.raw), warnings)
        if method == "PATCH":
            ctype = request.content_type
            if ctype not in (*PATCH_TYPES, APPLY_PATCH):
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join((*PATCH_TYPES, APPLY_PATCH))}",
                )
            wopts = self._write_options(request, apply=ctype == APPLY_PATCH)
            body = await self._body(request)
            warnings = (
                _check_fields(request, rtype, body, patch=True) if isinstance(body, dict) else []
            )

            def decode(patched: JSON) -> None:
                # A JSON patch's operations name no fields: the patched object is checked.
                warnings.extend(_check_fields(request, rtype, patched, patch=True))

            view = request[_VIEW]
            # An apply that creates the object answers 201 (handlers/patch.go).
            existed = store.storage.find(plural, namespace or "", name) is not None
            entry = store.patch_entry(
                plural,
                namespace,
                name,
                body,
                ctype,
                subresource=sub,
                convert=None if view is None else (view.to_external, view.to_internal),
                decode=decode if isinstance(body, list) else None,
                opts=wopts,
            )
            return _warn(_json_response(entry.raw, 200 if existed else 201), warnings)
        if method == "DELETE" and sub is None:
            dry_run = self._write_options(request).dry_run
            opts = await self._delete_options(request)
            entry, gone = store.delete_entry(plural, namespace, name, **opts, dry_run=dry_run)
            if gone and plural not in _RETURNS_DELETED_OBJECT:
                meta = entry.obj["metadata"]
                return _json_response(
                    _success_status(
                        200,
                        {
                            "name": name,
                            "group": rtype.group,
                            "kind": rtype.plural,
                            "uid": meta.get("uid"),
                        },
                    )
                )
            return _json_response(entry.raw)
        raise method_not_allowed()

    def _finalize_namespace(self, name: str, body: JSON) -> web.Response:
        store = self.store
        current = store.get("namespaces", None, name)
        finalizers = (body.get("spec") or {}).get("finalizers") or []
        if current["metadata"].get("deletionTimestamp") and not finalizers:
            store.finalize_namespace(name)
            current.setdefault("spec", {})["finalizers"] = []
            return _json_response(current)
        current.setdefault("spec", {})["finalizers"] = finalizers
        return _json_response(store.update("namespaces", None, name, current))

    async def _post_subresource(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str, sub: str
    ) -> web.Response:
        dry_run = self._write_options(request).dry_run
        if dry_run and sub != "eviction":
            raise bad_request(f"dryRun is not supported by the simulator for {sub}")
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        if dry_run:
            # The request's dryRun reaches the eviction's delete (eviction.go).
            body = {
                **body,
                "deleteOptions": {**(body.get("deleteOptions") or {}), "dryRun": ["All"]},
            }
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            # pkg/registry/core/pod/storage/eviction.go: name mismatch is 400.
            raise bad_request(f"name in URL does not match name in {sub} object")
        if sub == "binding":
            self.store.bind(namespace or "", name, body)
            return _json_response(_success_status(201), 201)
        handler = self.store.subresource_handler(rtype.plural, sub)
        if handler is None:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({rtype.plural}/{sub})",
            )
        result = handler(namespace, name, body)
        return _json_response(result, 201)

    async def _scale(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str
    ) -> web.Response:
        store = self.store
        if request.method == "GET":
            return _json_response(store.get_scale(rtype.key, namespace, name))
        opts = self._write_options(request)
        body = await self._body(request)
        if request.method == "PUT":
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            return _json_response(store.update_scale(rtype.key, namespace, name, body, opts=opts))
        if request.method == "PATCH":
            ctype = request.content_type
            if ctype not in PATCH_TYPES:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype}")
            return _json_response(
                store.update_scale(rtype.key, namespace, name, body, patch_type=ctype, opts=opts)
            )
        raise method_not_allowed()

    async def close_watches(self) -> None:
        """End every open watch (on shutdown)."""
        for task in list(self._watch_tasks):
            task.cancel()


# The registries with ReturnDeletedObject (pkg/registry/*/storage/storage.go; the generated
# clients' delete methods return the kind for these, a Status for the others). Not nodes:
# pkg/registry/core/node/storage/storage.go leaves it unset, so a deleted Node is answered
# with a Status {status: Success, details: {name, kind, uid}}.
_RETURNS_DELETED_OBJECT = frozenset(
    {
        "pods",
        "services",
        "serviceaccounts",
        "podtemplates",
        "resourcequotas",
        "persistentvolumes",
        "persistentvolumeclaims",
        "storageclasses",
        "csidrivers",
        "csinodes",
        "volumeattachments",
    }
)


_VIEW = "k8sdr.view"  # the request's other version of a stored kind (None: the stored one)


def _internal_body(request: web.Request, body: JSON) -> JSON:
    """A create or update body in the stored form."""
    view: Version | None = request[_VIEW]
    return body if view is None else view.to_internal(body)


def _external_body(stored: ResourceType, view: Version, raw: bytes) -> bytes:
    """A response of the stored kind (an object or a list of them) in the view's form."""
    doc = json.loads(raw)
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind == stored.kind:
        doc = view.to_external(doc)
    elif kind == f"{stored.kind}List":
        doc["apiVersion"] = view.type.api_version
        doc["kind"] = f"{view.type.kind}List"
        doc["items"] = [view.to_external(item) for item in doc.get("items") or []]
    else:
        return raw
    return json.dumps(doc, separators=(",", ":")).encode()


#: Audit verbs by HTTP method (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _verb(request: web.Request) -> str:
    """The request's audit verb (a read is `get`, a watch `watch`)."""
    if request.method in _VERBS:
        return _VERBS[request.method]
    if truthy(request.query.get("watch")):
        return "watch"
    return "get" if request.method in ("GET", "HEAD") else request.method.lower()


# What a custom resource's endpoints read and write: no protobuf, and CBOR only behind a
# feature gate that is off (apiextensions-apiserver/pkg/apiserver/customresource_handler.go,
# the CRD's unstructuredNegotiatedSerializer; its scale subresource keeps the built-in codecs).
_CUSTOM_MEDIA_TYPES = ("application/json", "application/yaml")


def _negotiate_custom(request: web.Request) -> None:
    """415 for a protobuf (or CBOR) body, 406 for an Accept naming neither JSON nor YAML.

    Clients that offer protobuf first (`application/vnd.kubernetes.protobuf,application/json`)
    get JSON, as upstream's negotiation (apiserver/pkg/endpoints/handlers/negotiation).
    """
    listed = ", ".join(_CUSTOM_MEDIA_TYPES)
    ctype = request.content_type
    if request.body_exists and ("protobuf" in ctype or "cbor" in ctype):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {listed}",
        )
    accept = request.headers.get("Accept", "")
    ranges = {part.split(";", 1)[0].strip() for part in accept.split(",")}
    if accept and not ranges & {*_CUSTOM_MEDIA_TYPES, "*/*", "application/*"}:
        raise ApiError(
            406, "NotAcceptable", f"only the following media types are accepted: {listed}"
        )


def _check_kind(rtype: ResourceType, body: JSON) -> None:
    kind = body.get("kind")
    if kind and kind != rtype.kind and not (kind == "Scale"):
        raise bad_request(
            f"the API version in the data ({body.get('apiVersion', '')}) does not match the "
            f"expected API version ({rtype.api_version}) or kind {kind!r} is not {rtype.kind!r}"
        )
