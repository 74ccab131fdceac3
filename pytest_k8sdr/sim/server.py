"""The simulated Kubernetes API server: HTTPS on loopback, the real REST API, one event loop.

Run as `python -m pytest_k8sdr.sim.server --state-dir DIR ...` (see INTERFACE.md). When it
answers, DIR/apiserver.json and DIR/kubeconfig exist.

Not modelled: protobuf responses (request bodies of the kinds kubectl sends are decoded),
server-side apply (`application/apply-patch+yaml` is 415), dry runs
(400), OpenAPI (a skeletal v3 document that lets kubectl leave validation to the server;
v2 is 404), aggregated discovery (clients fall back to the legacy documents),
authorization (any valid token is cluster-admin), the legacy `/api/v1/watch/...` paths.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import random
import secrets
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from pytest_k8sdr.sim import kubeconfig, tls
from pytest_k8sdr.sim.apierrors import ApiError, bad_request
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.patch import APPLY_PATCH, PATCH_TYPES
from pytest_k8sdr.sim.profiles import Profile, get_profile
from pytest_k8sdr.sim.protobuf import decode_protobuf_body
from pytest_k8sdr.sim.resources import BY_GVR, GROUPS
from pytest_k8sdr.sim.store import JSON, ResourceType, Store
from pytest_k8sdr.sim.tables import table_for

if TYPE_CHECKING:
    from pytest_k8sdr.sim.controllers import ControllerManager

log = logging.getLogger("pytest_k8sdr.sim.server")

KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-k8sdr-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_CATEGORIES_ALL = frozenset(
    {"pods", "services", "deployments", "replicasets", "statefulsets", "daemonsets"}
)
_JSON_CT = "application/json"


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


def _status_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after and err.retry_after > 0:
        # Retry-After only when retryAfterSeconds > 0 (apiserver responsewriters/writers.go).
        headers["Retry-After"] = str(err.retry_after)
    return web.Response(
        status=err.code,
        body=json.dumps(err.status()).encode(),
        content_type=_JSON_CT,
        headers=headers,
    )


def _json_response(body: Any, status: int = 200) -> web.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return web.Response(status=status, body=raw, content_type=_JSON_CT)


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


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


class ApiServer:
    """The aiohttp application around one Store."""

    def __init__(self, store: Store, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        self._token = settings.token.encode()
        self._rng = random.Random()
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        # Set by serve() once the controllers run: /k8sdr/v1/controllers switches them.
        self.controllers: ControllerManager | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    # -- entry ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if not self._authenticated(request):
            return _status_response(ApiError(401, "Unauthorized", "Unauthorized"))
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
        PUT /k8sdr/v1/controllers/NAME with {"enabled": bool}: switch one, answers the states.
        """
        if parts[:2] != ["v1", "controllers"] or len(parts) > 3 or self.controllers is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        manager = self.controllers
        if len(parts) == 2:
            if request.method != "GET":
                raise _method_not_allowed()
            return _json_response({"controllers": manager.states()})
        name = parts[2]
        if name not in manager.states():
            accepted = ", ".join(manager.states())
            raise ApiError(404, "NotFound", f"unknown controller {name!r}; accepted: {accepted}")
        if request.method == "GET":
            return _json_response({"name": name, "enabled": manager.states()[name]})
        if request.method not in ("PUT", "PATCH"):
            raise _method_not_allowed()
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
            return _json_response(KUBE_VERSION)
        if head == "openapi":
            return _json_response(_openapi(parts[1:]))
        if head == "k8sdr":
            return await self._control(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return _json_response(self._api_versions(request))
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json_response(self._api_group_list())
            if len(parts) == 2:
                return _json_response(self._api_group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if group not in GROUPS or version != "v1":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if request.method != "GET":
                raise _method_not_allowed()
            return _json_response(self._resource_list(group))
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in BY_GVR:
            namespace = rest[1]
            rest = rest[2:]
        rtype = BY_GVR.get((group, version, rest[0]))
        if rtype is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not rtype.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if name is None:
            return await self._collection(request, rtype, namespace)
        return await self._object(request, rtype, namespace, name, sub)

    # -- discovery -------------------------------------------------------------------

    def _api_versions(self, request: web.Request) -> JSON:
        host = request.host
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }

    def _group_doc(self, group: str) -> JSON:
        gv = {"groupVersion": f"{group}/v1", "version": "v1"}
        return {"name": group, "versions": [gv], "preferredVersion": gv}

    def _api_group_list(self) -> JSON:
        groups = [self._group_doc(g) for g in GROUPS if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _api_group(self, group: str) -> JSON:
        if group not in GROUPS or not group:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group)}

    def _resource_list(self, group: str) -> JSON:
        resources: list[JSON] = []
        for r in GROUPS[group]:
            entry: JSON = {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ],
                "storageVersionHash": "",
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.plural in _CATEGORIES_ALL:
                entry["categories"] = ["all"]
            resources.append(entry)
            for sub in sorted(r.subresources):
                if (
                    sub == "eviction"
                    and self.store.subresource_handler(r.plural, "eviction") is None
                ):
                    continue
                sub_entry: JSON = {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    sub_entry.update(kind="Scale", group="autoscaling", version="v1")
                elif sub == "eviction":
                    sub_entry.update(
                        kind="Eviction", group="policy", version="v1", verbs=["create"]
                    )
                elif sub == "binding":
                    sub_entry.update(kind="Binding", verbs=["create"])
                resources.append(sub_entry)
        gv = f"{group}/v1" if group else "v1"
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }

    # -- bodies ----------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type or _JSON_CT
        if not raw:
            return None
        if "protobuf" in ctype or "cbor" in ctype:
            return decode_protobuf_body(raw)
        if not (
            ctype in (_JSON_CT, "*/*", "application/octet-stream")
            or ctype.endswith(("+json", "yaml"))
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{_JSON_CT}, application/yaml, application/vnd.kubernetes.protobuf",
            )
        try:
            if ctype.endswith("yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the request body could not be decoded: {exc}") from exc

    @staticmethod
    def _reject_dry_run(request: web.Request) -> None:
        if request.query.get("dryRun"):
            raise bad_request("dryRun is not supported by the simulator")

    def _maybe_table(self, request: web.Request, rtype: ResourceType, raw: bytes) -> bytes:
        accept = request.headers.get("Accept", "")
        if "as=Table" not in accept:
            return raw
        return json.dumps(
            table_for(rtype, json.loads(raw), request.query.get("includeObject"))
        ).encode()

    # -- collections ------------------------------------------------------------------

    async def _collection(
        self, request: web.Request, rtype: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        method = request.method
        q = request.query
        store = self.store
        if method == "GET":
            if _truthy(q.get("watch")):
                return await self._watch(request, rtype, namespace)
            raw = store.list_raw(
                rtype.plural,
                namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
                limit=_int_param(q, "limit"),
                continue_token=q.get("continue") or None,
            )
            return _json_response(self._maybe_table(request, rtype, raw))
        if method == "POST":
            self._reject_dry_run(request)
            body = await self._body(request)
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            _check_kind(rtype, body)
            entry = store._create(rtype.plural, namespace, body)
            return _json_response(entry.raw, 201)
        if method == "DELETE":
            self._reject_dry_run(request)
            opts = await self._delete_options(request)
            listing = store.list(
                rtype.plural,
                namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
            )
            for item in listing["items"]:
                meta = item["metadata"]
                with contextlib.suppress(ApiError):
                    store._delete(rtype.plural, meta.get("namespace"), meta["name"], **opts)
            return _json_response(listing)
        raise _method_not_allowed()

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        body = await self._body(request) if request.can_read_body else None
        body = body if isinstance(body, dict) else {}
        grace = body.get("gracePeriodSeconds")
        if grace is None:
            grace = _int_param(q, "gracePeriodSeconds")
        policy = body.get("propagationPolicy") or q.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        if orphan is None and q.get("orphanDependents") is not None:
            orphan = _truthy(q.get("orphanDependents"))
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
        plural = rtype.plural
        if (
            sub is not None
            and sub not in rtype.subresources
            and not (plural == "namespaces" and sub == "finalize")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub in ("eviction", "binding"):
            if method != "POST":
                raise _method_not_allowed()
            return await self._post_subresource(request, rtype, namespace, name, sub)
        if sub == "scale":
            return await self._scale(request, rtype, namespace, name)
        if method == "GET":
            raw = store.get_raw(plural, namespace, name)
            return _json_response(self._maybe_table(request, rtype, raw))
        if method == "PUT":
            self._reject_dry_run(request)
            body = await self._body(request)
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            _check_kind(rtype, body)
            if sub == "finalize":
                return self._finalize_namespace(name, body)
            entry = store._update(plural, namespace, name, body, subresource=sub)
            return _json_response(entry.raw)
        if method == "PATCH":
            self._reject_dry_run(request)
            ctype = request.content_type
            if ctype == APPLY_PATCH:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "server-side apply (application/apply-patch+yaml) is not supported by the "
                    f"simulator; accepted patch types: {', '.join(PATCH_TYPES)}",
                )
            if ctype not in PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(PATCH_TYPES)}",
                )
            body = await self._body(request)
            entry = store._patch(plural, namespace, name, body, ctype, subresource=sub)
            return _json_response(entry.raw)
        if method == "DELETE" and sub is None:
            self._reject_dry_run(request)
            opts = await self._delete_options(request)
            entry, gone = store._delete(plural, namespace, name, **opts)
            if gone and plural not in ("pods", "services", "nodes"):
                meta = entry.obj["metadata"]
                return _json_response(
                    _success_status(
                        200,
                        {
                            "name": name,
                            "group": rtype.group,
                            "kind": plural,
                            "uid": meta.get("uid"),
                        },
                    )
                )
            return _json_response(entry.raw)
        raise _method_not_allowed()

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
        self._reject_dry_run(request)
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
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
            return _json_response(store.get_scale(rtype.plural, namespace, name))
        self._reject_dry_run(request)
        body = await self._body(request)
        if request.method == "PUT":
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            return _json_response(store.update_scale(rtype.plural, namespace, name, body))
        if request.method == "PATCH":
            ctype = request.content_type
            if ctype not in PATCH_TYPES:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype}")
            return _json_response(
                store.update_scale(rtype.plural, namespace, name, body, patch_type=ctype)
            )
        raise _method_not_allowed()

    # -- watch ----------------------------------------------------------------------

    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        q = request.query
        timeout = _int_param(q, "timeoutSeconds")
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        send_initial = _truthy(q.get("sendInitialEvents"))
        response = web.StreamResponse(status=200, headers={"Content-Type": _JSON_CT})
        response.enable_chunked_encoding()
        rv = q.get("resourceVersion")
        if send_initial:
            rv = None
        try:
            watch = self.store.watch(
                rtype.plural,
                namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
                resource_version=rv,
            )
        except ApiError as err:
            if err.code != 410:
                raise
            # A too-old RV is HTTP 200 and one ERROR event (storage/cacher/watch_cache.go).
            await response.prepare(request)
            line = json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n"
            await response.write(line)
            await response.write_eof()
            return response
        loop = asyncio.get_running_loop()
        started = loop.time()
        if timeout is not None and timeout > 0:
            deadline = started + timeout
        else:
            deadline = started + self.settings.min_request_timeout * (1 + self._rng.random())
        cut = self.settings.faults.watch_cut_seconds
        if cut:
            deadline = min(deadline, started + cut)
        bookmark_every = self.settings.bookmark_interval
        bookmark_head = (
            b'{"type":"BOOKMARK","object":{"kind":"'
            + rtype.kind.encode()
            + b'","apiVersion":"'
            + rtype.api_version.encode()
            + b'","metadata":{"resourceVersion":"'
        )
        await response.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._watch_tasks.add(task)
        queue = watch.queue
        as_table = "as=Table" in request.headers.get("Accept", "")
        include_object = q.get("includeObject")

        def encode(chunks: list[bytes | None]) -> bytes:
            data = [c for c in chunks if c is not None]
            if as_table:
                data = [_table_line(rtype, c, include_object) for c in data]
            return b"".join(data)

        try:
            if send_initial and bookmarks:
                chunks = _drain(queue)
                chunks.append(
                    bookmark_head
                    + str(self.store.resource_version).encode()
                    + b'","annotations":{"k8s.io/initial-events-end":"true"}}}}\n'
                )
                await response.write(encode(chunks))
            next_bookmark = loop.time() + bookmark_every
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark and queue.empty():
                    line = bookmark_head + str(self.store.resource_version).encode() + b'"}}}\n'
                    await response.write(line)
                    next_bookmark = now + bookmark_every
                    continue
                if not queue.empty():
                    # Never wait_for() with a zero timeout here: on Python 3.11 it times out
                    # before queue.get() runs, and a due bookmark would then starve delivery.
                    first = queue.get_nowait()
                else:
                    wait = deadline - now
                    if bookmarks:
                        wait = min(wait, max(0.0, next_bookmark - now))
                    try:
                        first = await asyncio.wait_for(queue.get(), wait)
                    except TimeoutError:
                        continue
                if first is None:
                    break
                chunks = [first, *_drain(queue)]
                closed = None in chunks
                await response.write(encode(chunks))
                if closed:
                    break
        except ConnectionResetError:
            return response  # the client went away
        finally:
            watch.close()
            if task is not None:
                self._watch_tasks.discard(task)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    async def close_watches(self) -> None:
        """End every open watch (on shutdown)."""
        for task in list(self._watch_tasks):
            task.cancel()


def _table_line(rtype: ResourceType, line: bytes, include_object: str | None) -> bytes:
    event = json.loads(line)
    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
        event["object"] = table_for(rtype, event["object"], include_object)
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _drain(queue: asyncio.Queue[bytes | None]) -> list[bytes | None]:
    out: list[bytes | None] = []
    while True:
        try:
            out.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return out


def _check_kind(rtype: ResourceType, body: JSON) -> None:
    kind = body.get("kind")
    if kind and kind != rtype.kind and not (kind == "Scale"):
        raise bad_request(
            f"the API version in the data ({body.get('apiVersion', '')}) does not match the "
            f"expected API version ({rtype.api_version}) or kind {kind!r} is not {rtype.kind!r}"
        )


def _openapi(parts: list[str]) -> JSON:
    """A skeletal OpenAPI v3 document, only what kubectl reads.

    kubectl learns from it that the server validates fields itself, so it skips client-side
    schema validation (cli-runtime resource/query_param_verifier_v3.go looks for a PATCH
    operation of the kind with a `fieldValidation` parameter).
    """
    if parts[:1] != ["v3"]:
        raise ApiError(404, "NotFound", "OpenAPI v2 is not served by the simulator")
    if len(parts) == 1:
        paths = {}
        for group in GROUPS:
            key = f"apis/{group}/v1" if group else "api/v1"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=K8SDRSIM"}
        return {"paths": paths}
    key = "/".join(parts[1:])
    group = parts[2] if parts[1] == "apis" and len(parts) > 2 else ""
    if key != (f"apis/{group}/v1" if group else "api/v1") or group not in GROUPS:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    doc_paths: JSON = {}
    params = [
        {"name": n, "in": "query", "schema": {"type": "string"}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    for r in GROUPS[group]:
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        gvk = {"group": group, "version": "v1", "kind": r.kind}
        doc_paths[f"{prefix}{ns}/{r.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": doc_paths,
        "components": {"schemas": {}},
    }


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


# -- process entry point -----------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_k8sdr.sim.server",
        description="Run the simulated Kubernetes API server and controllers.",
    )
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--disable-controller", action="append", default=[])
    parser.add_argument("--token", default=None, help="bearer token (default: random)")
    parser.add_argument(
        "--history-window",
        type=float,
        default=300.0,
        help="seconds of watch history kept (older resourceVersions are 410)",
    )
    parser.add_argument(
        "--history-max",
        type=int,
        default=500_000,
        help="at most this many changes kept per resource type in the watch history",
    )
    parser.add_argument("--bookmark-interval", type=float, default=None)
    parser.add_argument("--min-request-timeout", type=float, default=1800.0)
    parser.add_argument("--fault-error-rate", type=float, default=0.0)
    parser.add_argument("--fault-latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-watch-cut-seconds", type=float, default=0.0)
    parser.add_argument("--fault-retry-after", type=int, default=1)
    parser.add_argument("--fault-error-codes", default="500,429")
    parser.add_argument("--ready-fd", type=int, default=None, help="write a line here when serving")
    return parser.parse_args(argv)


def _check_host(host: str) -> None:
    import ipaddress

    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise ValueError(
        f"the simulator serves on loopback only; --host {host!r} is not a loopback address"
    )


async def serve(
    state_dir: Path,
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str, int], Awaitable[None] | None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or forever): TLS, the Store, the controllers."""
    from pytest_k8sdr.sim.controllers import ControllerManager

    _check_host(host)
    state_dir.mkdir(parents=True, exist_ok=True)
    certs = tls.generate(state_dir / "pki", host)
    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_ctx.load_cert_chain(certs.cert_path, certs.key_path)
    store = Store(history_window=settings.history_window, history_max=settings.history_max)
    server = ApiServer(store, settings)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_address=True)
    await site.start()
    addresses = runner.addresses
    bound_port = int(addresses[0][1]) if addresses else port
    controllers = ControllerManager(store, settings.profile)
    controllers.start(set(settings.disabled_controllers))
    server.controllers = controllers
    url = f"https://{host}:{bound_port}"
    kubeconfig.write(state_dir / "kubeconfig", url, certs.ca_pem, settings.token)
    info = {
        "host": host,
        "port": bound_port,
        "pid": os.getpid(),
        "token": settings.token,
        "url": url,
    }
    tmp = state_dir / "apiserver.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    tmp.replace(state_dir / "apiserver.json")
    if ready is not None:
        result = ready(host, bound_port)
        if result is not None:
            await result
    stop = stop or asyncio.Event()
    try:
        await stop.wait()
    finally:
        controllers.stop()
        await server.close_watches()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server process until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        profile = get_profile(args.profile)
        _check_host(args.host)
        faults = FaultConfig(
            error_rate=args.fault_error_rate,
            latency_ms=args.fault_latency_ms,
            watch_cut_seconds=args.fault_watch_cut_seconds,
            retry_after=args.fault_retry_after,
            error_codes=tuple(int(c) for c in args.fault_error_codes.split(",") if c),
        )
    except ValueError as exc:
        print(f"k8sdr sim server: {exc}", file=sys.stderr)
        return 2
    bookmark = args.bookmark_interval
    if bookmark is None:
        bookmark = 60.0 if profile.name == "upstream" else 5.0
    settings = ServerSettings(
        token=args.token or secrets.token_urlsafe(32),
        profile=profile,
        history_window=args.history_window,
        history_max=args.history_max,
        bookmark_interval=bookmark,
        min_request_timeout=args.min_request_timeout,
        faults=faults,
        disabled_controllers=frozenset(args.disable_controller),
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(host: str, port: int) -> None:
            if args.ready_fd is not None:
                os.write(args.ready_fd, f"{host}:{port}\n".encode())
                os.close(args.ready_fd)

        await serve(
            args.state_dir, settings, host=args.host, port=args.port, stop=stop, ready=ready
        )

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"k8sdr sim server: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"k8sdr sim server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
