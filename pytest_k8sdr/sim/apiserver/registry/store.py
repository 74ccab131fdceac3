"""The generic registry store: what every write goes through before it reaches storage.

As apiserver/pkg/registry/generic/registry/store.go: for a create, the strategy's
PrepareForCreate and defaults, the admission chain, validation, then the commit; for an
update the same with the immutable metadata kept; for a delete the graceful-deletion and
finalizer rules (`deletion`). Synchronous, single event loop, JSON dicts in and deep copies
out; errors are `ApiError`, which the HTTP layer answers with a Status body.

A write records its field manager in metadata.managedFields (`managedfields`) when the
request names a fieldManager or the object already has managed fields (upstream records
every write; writes by the simulator's controllers and node agents, and by clients naming
no manager, to untracked objects record nothing, which keeps their cost as before); a
PATCH of type application/apply-patch+yaml is server-side apply; `WriteOptions.dry_run`
runs a write through everything but the commit (dryRun=All). Not modelled:
resourceVersionMatch, validating admission and quotas.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.apimachinery import managedfields
from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import (
    ApiError,
    already_exists,
    conflict,
    invalid,
    not_found,
)
from pytest_k8sdr.sim.apimachinery.patch import APPLY_PATCH, apply_patch
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType, WatchEvent
from pytest_k8sdr.sim.apiserver.admission import AdmissionChain, MutatingPlugin
from pytest_k8sdr.sim.apiserver.registry import deletion
from pytest_k8sdr.sim.apiserver.registry.apiextensions import (
    CRD_PLURAL,
    CustomResource,
    crd_status,
)
from pytest_k8sdr.sim.apiserver.registry.deletion import OwnerGraph
from pytest_k8sdr.sim.apiserver.registry.pods import bind_pod
from pytest_k8sdr.sim.apiserver.registry.resources import (
    BY_GVR,
    GROUP_VERSIONS,
    RESOURCES,
    VIEWS,
)
from pytest_k8sdr.sim.apiserver.registry.scale import scale_of, scale_replicas
from pytest_k8sdr.sim.apiserver.registry.scheduling import SYSTEM_PRIORITY_CLASSES
from pytest_k8sdr.sim.apiserver.registry.strategy import Strategy, Version, validate_metadata
from pytest_k8sdr.sim.apiserver.storage import Entry, Storage, Watch, dumps

__all__ = ["Store", "SubresourceHandler", "WriteOptions"]

# handler(namespace, name, body) -> the answer, for a POST to a subresource (pods/eviction).
SubresourceHandler = Callable[[str | None, str, JSON], JSON]

_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# pkg/registry/scheduling/rest/storage_scheduling.go AddSystemPriorityClasses.
_SYSTEM_CLASS_DESCRIPTIONS = {
    "system-node-critical": "Used for system critical pods that must not be moved from their "
    "current node.",
    "system-cluster-critical": "Used for system critical pods that must run in the cluster, but "
    "can be moved to another node if necessary.",
}
_STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


@dataclass(frozen=True)
class WriteOptions:
    """Who writes and how (the fieldManager, dryRun and force of the request)."""

    # Writes from inside the control plane are the controller manager's, as upstream.
    manager: str = "kube-controller-manager"
    dry_run: bool = False
    # Server-side apply only: take the conflicting fields from their managers.
    force: bool = False
    # Whether the write records its manager on an object that has no managedFields yet:
    # true when the request names a fieldManager (kubectl always does). The simulator's
    # own components and clients that name none leave untracked objects untracked, so
    # their hot paths pay nothing (upstream tracks every write; see the module doc).
    record: bool = True


_DEFAULT_WRITE = WriteOptions(record=False)
# metadata.managedFields (`list` is shadowed by Store.list inside the class).
_Entries = list[JSON]

# Metadata an update cannot change.
_KEPT_META = (
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


class Store:
    """The served objects with upstream's write semantics; see the module doc.

    The `*_entry` methods are for the HTTP layer, which sends the stored bytes as they are.
    """

    def __init__(
        self,
        *,
        history_window: float = 300.0,
        history_max: int = 500_000,
        history_max_bytes: int = 64 * 1024 * 1024,
        watch_queue_max: int = 100_000,
        bootstrap: bool = True,
        store_dir: Path | None = None,
        fsync_interval: float = 1.0,
    ) -> None:
        self.storage = Storage(
            (r.type for r in RESOURCES),
            history_window=history_window,
            history_max=history_max,
            history_max_bytes=history_max_bytes,
            watch_queue_max=watch_queue_max,
        )
        self._strategies: dict[str, Strategy] = {r.type.key: r.strategy() for r in RESOURCES}
        # The established CustomResourceDefinitions' resources, by key (the CRD's name), and
        # the group versions they serve (`served`, `custom_group_versions`).
        self.custom: dict[str, CustomResource] = {}
        self._custom_gvs: dict[str, dict[str, list[ResourceType]]] = {}
        self.admission = AdmissionChain()
        self._subresources: dict[tuple[str, str], SubresourceHandler] = {}
        # The ownership garbage collector, once one is attached.
        self.owners: OwnerGraph | None = None
        self._rng = random.Random()
        if store_dir is not None and self._restore(store_dir, fsync_interval):
            bootstrap = False  # a restarted server finds the default objects in its store
        if bootstrap:
            for ns in _BOOTSTRAP_NAMESPACES:
                self.create("namespaces", None, {"metadata": {"name": ns}})
            for pc_name, value in SYSTEM_PRIORITY_CLASSES.items():
                self.create(
                    "priorityclasses",
                    None,
                    {
                        "metadata": {"name": pc_name},
                        "value": value,
                        "description": _SYSTEM_CLASS_DESCRIPTIONS[pc_name],
                    },
                )
            self.create(
                "services",
                "default",
                {
                    "metadata": {"name": "kubernetes", "labels": {"component": "apiserver"}},
                    "spec": {
                        "clusterIP": "10.96.0.1",
                        "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                    },
                },
            )

    def _restore(self, store_dir: Path, fsync_interval: float) -> int:
        """Read the durable store back (see `Storage.open_durable`); how many objects."""
        restored = self.storage.open_durable(
            store_dir, fsync_interval=fsync_interval, defined_by=(CRD_PLURAL, self._crd_types)
        )
        for plural, strategy in self._strategies.items():
            for obj in self.storage.iter_objects(plural):
                strategy.restore(obj)
        return restored

    def _crd_types(self, crds: list[JSON]) -> list[ResourceType]:
        types = []
        for crd in crds:
            served = CustomResource.of(crd)
            if served is not None:
                self._serve(served)
                types.append(served.type)
        return types

    # -- custom resources ------------------------------------------------------------

    def served(
        self, group: str, version: str, plural: str
    ) -> tuple[ResourceType, Version | None] | None:
        """The stored type serving group/version/plural, and the view when another version."""
        key = (group, version, plural)
        rtype = BY_GVR.get(key)
        if rtype is not None:
            return rtype, None
        if key in VIEWS:
            return VIEWS[key]
        custom = self.custom.get(f"{plural}.{group}")
        if custom is None:
            return None
        if version in custom.views:
            return custom.type, custom.views[version]
        if version == custom.type.version and version in custom.schemas:
            return custom.type, None
        return None

    def is_custom(self, rtype: ResourceType) -> bool:
        """Whether `rtype` (a stored type) is a CustomResourceDefinition's resource."""
        return rtype.key in self.custom

    def group_versions(self) -> dict[str, dict[str, list[ResourceType]]]:
        """Every served group -> version -> types (the built-in kinds' and the CRDs')."""
        if not self._custom_gvs:
            return GROUP_VERSIONS
        merged = {g: dict(vs) for g, vs in GROUP_VERSIONS.items()}
        for group, versions in self._custom_gvs.items():
            for version, types in versions.items():
                merged.setdefault(group, {})[version] = [
                    *merged.get(group, {}).get(version, []),
                    *types,
                ]
        return merged

    def serves_group_version(self, group: str, version: str) -> bool:
        """Whether group/version is served (without building `group_versions`)."""
        return version in GROUP_VERSIONS.get(group, {}) or version in self._custom_gvs.get(
            group, {}
        )

    def _serve(self, custom: CustomResource) -> None:
        plural = custom.type.key
        self.custom[plural] = custom
        self._strategies[plural] = custom.strategy()
        self.storage.add_type(custom.type)
        self._index_custom()

    def _unserve(self, plural: str) -> None:
        if self.custom.pop(plural, None) is None:
            return
        # Deleting a CRD deletes its custom resources (upstream's finalizer controller,
        # pkg/controller/finalizer/crd_finalizer.go, here at once and past their finalizers).
        for ns in self.storage.namespaces_of(plural):
            for name, entry in list(self.storage.names(plural, ns).items()):
                self._remove(plural, ns, name, json.loads(entry.raw), entry)
        self.storage.remove_type(plural)
        self._strategies.pop(plural, None)
        self._index_custom()

    def _index_custom(self) -> None:
        gvs: dict[str, dict[str, list[ResourceType]]] = {}
        for custom in self.custom.values():
            for version in custom.served_versions:
                view = custom.views.get(version)
                rtype = custom.type if view is None else view.type
                gvs.setdefault(rtype.group, {}).setdefault(version, []).append(rtype)
        self._custom_gvs = gvs

    def _name_crd(self, crd: JSON) -> None:
        """What the naming and establishing controllers write (apiextensions.crd_status)."""
        name = crd["metadata"].get("name")
        others = [o for o in self.storage.iter_objects(CRD_PLURAL) if o["metadata"]["name"] != name]
        # Names conflict within a group only (naming_controller.go getAcceptedNamesForGroup):
        # the other CRDs of the group, and here also the built-in kinds served there.
        group = (crd.get("spec") or {}).get("group")
        taken = [
            t.plural
            for key, t in self.storage.types.items()
            if t.group == group and key not in self.custom
        ]
        crd_status(crd, others, taken)

    def _crd_committed(self, entry: Entry) -> None:
        """Serve (or stop serving, or re-serve) a CRD's resources after its commit."""
        crd = entry.obj
        name = crd["metadata"]["name"]
        served = CustomResource.of(crd)
        for plural, custom in list(self.custom.items()):
            if custom.crd_name == name and (served is None or served.type.key != plural):
                self._unserve(plural)
        if served is not None:
            self._serve(served)

    # -- reads ---------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The last committed resourceVersion."""
        return self.storage.resource_version

    def rtype(self, plural: str) -> ResourceType:
        """The served type for `plural`; 404 NotFound when the simulator does not serve it."""
        return self.storage.rtype(plural)

    def count(self, plural: str, namespace: str | None = None) -> int:
        """How many objects of a type exist (in a namespace)."""
        return self.storage.count(plural, namespace)

    def get(self, plural: str, namespace: str | None, name: str) -> JSON:
        """The object; ApiError 404 when missing."""
        return json.loads(self.storage.entry(plural, namespace, name).raw)  # type: ignore[no-any-return]

    def get_raw(self, plural: str, namespace: str | None, name: str) -> bytes:
        """The object's JSON bytes (shared, immutable)."""
        return self.storage.entry(plural, namespace, name).raw

    def list(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JSON:
        """A `<Kind>List` with `metadata.resourceVersion` (and `continue` when paginated).

        The HTTP layer sends `storage.list_raw`'s bytes as they are.
        """
        raw = self.storage.list_raw(
            plural,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_token=continue_token,
        )
        return json.loads(raw)  # type: ignore[no-any-return]

    def find(self, plural: str, namespace: str | None, name: str) -> JSON | None:
        """The object as a read-only shared dict (do not mutate it), or None."""
        rtype = self.rtype(plural)
        entry = self.storage.find(plural, (namespace or "") if rtype.namespaced else "", name)
        return None if entry is None else entry.obj

    def iter_objects(self, plural: str, namespace: str | None = None) -> Iterator[JSON]:
        """Every object of a type, as read-only shared dicts (do not mutate them)."""
        return self.storage.iter_objects(plural, namespace)

    def watch(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> Watch:
        """Start a watch (see `Storage.watch`)."""
        return self.storage.watch(
            plural,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
        )

    def subscribe(self, plural: str, callback: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call `callback` synchronously after every committed change (see `Storage`)."""
        return self.storage.subscribe(plural, callback)

    # -- plugins -------------------------------------------------------------------

    def add_admission(self, plural: str, plugin: MutatingPlugin) -> Callable[[], None]:
        """Mutating admission: plugin("CREATE"|"UPDATE", new_obj, old_obj) may edit new_obj.

        Returns a function that removes the plugin (an admission plugin switched off).
        """
        return self.admission.add(plural, plugin)

    def register_subresource(
        self, plural: str, subresource: str, handler: SubresourceHandler
    ) -> None:
        """POST handler for a subresource, e.g. pods/eviction: handler(namespace, name, body)."""
        self._subresources[(plural, subresource)] = handler

    def subresource_handler(self, plural: str, subresource: str) -> SubresourceHandler | None:
        """The POST handler registered for `plural/subresource`, if any."""
        return self._subresources.get((plural, subresource))

    def attach_owners(self, owners: OwnerGraph) -> None:
        """Let `owners` (the garbage collector) handle ownerReferences from now on."""
        self.owners = owners

    # -- create --------------------------------------------------------------------

    def _namespace_of(self, rtype: ResourceType, namespace: str | None, obj: JSON) -> str:
        if not rtype.namespaced:
            return ""
        body_ns = (obj.get("metadata") or {}).get("namespace")
        ns = namespace or body_ns or ""
        if body_ns and namespace and body_ns != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if not ns:
            raise ApiError(400, "BadRequest", "an empty namespace may not be set during creation")
        return ns

    def _check_namespace_open(self, plural: str, ns: str, obj: JSON) -> None:
        ns_entry = self.storage.find("namespaces", "", ns)
        if ns_entry is None:
            raise not_found("namespaces", ns)
        if ns_entry.obj["metadata"].get("deletionTimestamp"):
            name = (obj.get("metadata") or {}).get("name", "")
            raise ApiError(
                403,
                "Forbidden",
                f'{plural} "{name}" is forbidden: unable to create new content in namespace '
                f"{ns} because it is being terminated",
                details={
                    "name": name,
                    "kind": plural,
                    "causes": [
                        {
                            "type": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def create(
        self,
        plural: str,
        namespace: str | None,
        obj: JSON,
        *,
        opts: WriteOptions = _DEFAULT_WRITE,
    ) -> JSON:
        """Create (admission, defaulting, validation, generateName); 409 AlreadyExists."""
        entry = self.create_entry(plural, namespace, _copy(obj), opts=opts)
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def create_entry(
        self,
        plural: str,
        namespace: str | None,
        obj: JSON,
        *,
        opts: WriteOptions = _DEFAULT_WRITE,
        managed: _Entries | None = None,
    ) -> Entry:
        """`create`, taking ownership of `obj`; the committed entry.

        `managed`: the managedFields a server-side apply computed (else the create is an
        Update by `opts.manager`).
        """
        rtype = self.rtype(plural)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        ns = self._namespace_of(rtype, namespace, obj)
        if rtype.namespaced:
            self._check_namespace_open(plural, ns, obj)
        strategy = self._strategies[plural]
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        obj["metadata"] = meta
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(plural, ns, str(meta["generateName"]))
        name = str(meta.get("name") or "")
        obj["kind"] = rtype.kind
        obj["apiVersion"] = rtype.api_version
        if rtype.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if strategy.track_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        strategy.prepare_for_create(obj)
        strategy.default(obj)
        self.admission.admit("CREATE", plural, obj, None)
        self._validate(rtype, strategy, obj, None)
        if name in self.storage.names(plural, ns):
            raise already_exists(rtype.plural, name, rtype.group)
        if plural == CRD_PLURAL:
            self._name_crd(obj)
        self._manage(rtype, None, obj, opts, None, managed)
        if opts.dry_run:
            return Entry(obj, dumps(obj), self.storage.resource_version)
        strategy.allocate(obj, None)
        entry = self.storage.commit(plural, "ADDED", ns, name, obj, None)
        if plural == CRD_PLURAL:
            self._crd_committed(entry)
        if self.owners is not None:
            self.owners.created(plural, ns, name, entry.obj)
        return entry

    def _manage(
        self,
        rtype: ResourceType,
        old: JSON | None,
        new: JSON,
        opts: WriteOptions,
        subresource: str | None,
        managed: _Entries | None,
    ) -> None:
        """Set new's managedFields: `managed` (an apply's), else this write as an Update."""
        meta = new["metadata"]
        if managed is None:
            base = meta.get("managedFields")
            if not base and old is not None:
                # A client that does not know managedFields cannot drop them (fieldmanager.go).
                base = old["metadata"].get("managedFields")
            if not base and not opts.record:
                meta.pop("managedFields", None)
                return
            scope = managedfields.Scope(subresource, "status" in rtype.subresources)
            recorded = managedfields.record_update(
                base,
                old,
                new,
                manager=opts.manager,
                api_version=rtype.api_version,
                scope=scope,
                now=now_rfc3339(),
            )
            managed = base if recorded is None else recorded
            if isinstance(managed, list):
                managed = [e for e in managed if isinstance(e, dict) and e.get("manager")]
        if managed:
            meta["managedFields"] = managed
        else:
            meta.pop("managedFields", None)

    def _validate(
        self, rtype: ResourceType, strategy: Strategy, obj: JSON, old: JSON | None
    ) -> None:
        causes = validate_metadata(strategy, obj, old) + strategy.validate(obj, old)
        if causes:
            name = str((obj.get("metadata") or {}).get("name", ""))
            raise invalid(rtype.kind, name, causes, rtype.group)

    def _generate_name(self, plural: str, ns: str, prefix: str) -> str:
        bucket = self.storage.names(plural, ns)
        for _ in range(100):
            name = prefix + "".join(self._rng.choice(_GENERATE_CHARS) for _ in range(5))
            if name not in bucket:
                return name
        raise ApiError(500, "AlreadyExists", f"could not generate a unique name from {prefix!r}")

    # -- update and patch ------------------------------------------------------------

    def update(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        obj: JSON,
        *,
        subresource: str | None = None,
        opts: WriteOptions = _DEFAULT_WRITE,
    ) -> JSON:
        """Replace; stale metadata.resourceVersion is 409 Conflict; `status` updates only status."""
        entry = self.update_entry(
            plural, namespace, name, _copy(obj), subresource=subresource, opts=opts
        )
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def update_entry(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        obj: JSON,
        *,
        subresource: str | None = None,
        opts: WriteOptions = _DEFAULT_WRITE,
    ) -> Entry:
        """`update`, taking ownership of `obj`; the committed entry."""
        rtype = self.rtype(plural)
        old = self.storage.entry(plural, namespace, name)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            obj["metadata"] = meta
        body_name = meta.get("name")
        if body_name and body_name != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
            )
        self._check_fresh(rtype, name, old, meta.get("resourceVersion"))
        return self._write(rtype, old, obj, subresource, opts)

    @staticmethod
    def _check_fresh(rtype: ResourceType, name: str, old: Entry, want: Any) -> None:
        if want and str(want) != old.obj["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, name, _STALE, rtype.group)

    def _write(
        self,
        rtype: ResourceType,
        old: Entry,
        obj: JSON,
        subresource: str | None,
        opts: WriteOptions,
        managed: _Entries | None = None,
    ) -> Entry:
        plural = rtype.key
        old_obj = old.obj
        old_meta = old_obj["metadata"]
        strategy = self._strategies[plural]
        if subresource in strategy.own_subresources:
            new = obj
            new.update(kind=rtype.kind, apiVersion=rtype.api_version, metadata=dict(old_meta))
            meta = new["metadata"]
            strategy.prepare_for_update(new, old_obj, subresource)
            causes = strategy.validate_subresource(subresource, new, old_obj)
            if causes:
                raise invalid(rtype.kind, old_meta["name"], causes, rtype.group)
        elif subresource == "status":
            # Committed objects are never mutated, so the new version may share everything
            # but the metadata (resourceVersion changes) and the status it replaces.
            new = {**old_obj, "metadata": dict(old_meta), "status": obj.get("status", {})}
            meta = new["metadata"]
        else:
            new = obj
            new["kind"] = rtype.kind
            new["apiVersion"] = rtype.api_version
            meta = new.setdefault("metadata", {})
            for key in _KEPT_META:
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            # Without a status subresource a custom resource's status is a field as any
            # other (customresource/strategy.go); a built-in kind's main writes keep it.
            if "status" in rtype.subresources or (
                "status" in old_obj and plural not in self.custom
            ):
                if "status" in old_obj:
                    new["status"] = _copy(old_obj["status"])
                else:
                    new.pop("status", None)
            strategy.prepare_for_update(new, old_obj, None)
            strategy.default(new)
            self.admission.admit("UPDATE", plural, new, old_obj)
            self._validate(rtype, strategy, new, old_obj)
            strategy.allocate(new, old_obj)
            if "generation" in old_meta and _spec_of(new) != _spec_of(old_obj):
                meta["generation"] = int(old_meta["generation"]) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if plural == CRD_PLURAL:
            self._name_crd(new)
        self._manage(rtype, old_obj, new, opts, subresource, managed)
        if new == old_obj:
            return old  # a no-op write commits nothing, as upstream
        if opts.dry_run:
            return Entry(new, dumps(new), old.rv)
        ns = old_meta.get("namespace", "") if rtype.namespaced else ""
        name = old_meta["name"]
        # An object being deleted goes once its finalizers are gone and its grace is over
        # (apiserver/pkg/registry/generic/registry/store.go ShouldDeleteDuringUpdate).
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and meta.get("deletionGracePeriodSeconds", 0) == 0
        ):
            return self._remove(plural, ns, name, new, old)
        entry = self.storage.commit(plural, "MODIFIED", ns, name, new, old)
        if plural == CRD_PLURAL:
            self._crd_committed(entry)
        return entry

    def patch(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        opts: WriteOptions = _DEFAULT_WRITE,
    ) -> JSON:
        """Patch in json-patch, merge-patch, strategic-merge-patch or apply-patch (SSA)."""
        entry = self.patch_entry(
            plural, namespace, name, _copy(patch), content_type, subresource=subresource, opts=opts
        )
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def patch_entry(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        convert: tuple[Callable[[JSON], JSON], Callable[[JSON], JSON]] | None = None,
        decode: Callable[[JSON], None] | None = None,
        opts: WriteOptions = _DEFAULT_WRITE,
    ) -> Entry:
        """`patch`; the committed entry.

        `convert` (to the client's version, back to the stored one) patches another
        version's form of the object, as upstream patches the request's version; `decode`
        sees (and may prune) the patched object in that version before it is stored, as
        upstream decodes it (handlers/patch.go).
        """
        rtype = self.rtype(plural)
        if content_type.split(";", 1)[0].strip() == APPLY_PATCH:
            return self._server_side_apply(rtype, namespace, name, patch, subresource, opts)
        old = self.storage.entry(plural, namespace, name)
        current = json.loads(old.raw) if convert is None else convert[0](json.loads(old.raw))
        new = apply_patch(current, patch, content_type)
        if decode is not None:
            decode(new)
        if convert is not None:
            new = convert[1](new)
        self._check_fresh(rtype, name, old, (new.get("metadata") or {}).get("resourceVersion"))
        return self._write(rtype, old, new, subresource, opts)

    def _server_side_apply(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None,
        opts: WriteOptions,
    ) -> Entry:
        """An apply patch: merge, own, conflict (409) as managedfields.apply; creates if absent."""
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the apply patch must be a YAML or JSON object")
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            body["metadata"] = meta
        body_name = meta.get("name")
        if body_name and body_name != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
            )
        for key in ("apiVersion", "kind"):
            if not body.get(key):
                # apimachinery decoding of an apply configuration (handlers/patch.go).
                raise ApiError(400, "BadRequest", f"{key} must be set in an apply patch")
        ns = self._namespace_of(rtype, namespace, body) if rtype.namespaced else ""
        old = self.storage.find(rtype.key, ns, name)
        scope = managedfields.Scope(subresource, "status" in rtype.subresources)
        common = {
            "manager": opts.manager,
            "api_version": rtype.api_version,
            "scope": scope,
            "force": opts.force,
            "now": now_rfc3339(),
        }
        if old is None:
            if subresource is not None:
                raise not_found(rtype.plural, name, rtype.group)
            obj, managed = managedfields.apply(None, None, body, **common)  # type: ignore[arg-type]
            obj["metadata"] = {**(obj.get("metadata") or {}), "name": name}
            return self.create_entry(rtype.key, ns or None, obj, opts=opts, managed=managed)
        self._check_fresh(rtype, name, old, meta.get("resourceVersion"))
        live = json.loads(old.raw)
        obj, managed = managedfields.apply(
            live["metadata"].get("managedFields"),
            live,
            body,
            **common,  # type: ignore[arg-type]
        )
        if subresource != "status":
            obj["metadata"] = {**(obj.get("metadata") or {}), "name": name}
        return self._write(rtype, old, obj, subresource, opts, managed)

    # -- subresources ----------------------------------------------------------------

    def bind(self, namespace: str, name: str, binding: JSON) -> JSON:
        """pods/binding: set spec.nodeName and PodScheduled=True; 409 if already bound."""
        return json.loads(bind_pod(self.storage, namespace, name, binding).raw)  # type: ignore[no-any-return]

    def get_scale(self, plural: str, namespace: str | None, name: str) -> JSON:
        """The autoscaling/v1 Scale of a workload or a custom resource with a scale subresource."""
        obj = self.storage.entry(plural, namespace, name).obj
        custom = self.custom.get(plural)
        return scale_of(obj) if custom is None else custom.scale_of(obj)

    def update_scale(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        scale: JSON,
        *,
        patch_type: str | None = None,
        opts: WriteOptions = _DEFAULT_WRITE,
    ) -> JSON:
        """Set spec.replicas through the scale subresource (a Scale body or a patch of one)."""
        rtype = self.rtype(plural)
        if "scale" not in rtype.subresources:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({plural}/scale)",
            )
        old = self.storage.entry(plural, namespace, name)
        custom = self.custom.get(plural)
        if patch_type is not None:
            scale = apply_patch(self.get_scale(plural, namespace, name), scale, patch_type)
        self._check_fresh(rtype, name, old, (scale.get("metadata") or {}).get("resourceVersion"))
        replicas = scale_replicas(name, scale)
        new = json.loads(old.raw)
        if custom is None:
            new["spec"]["replicas"] = replicas
            return scale_of(self._write(rtype, old, new, None, opts).obj)
        custom.set_replicas(new, replicas)
        return custom.scale_of(self._write(rtype, old, new, None, opts).obj)

    # -- delete ----------------------------------------------------------------------

    def delete(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: JSON | None = None,
    ) -> JSON:
        """Delete with upstream's graceful-deletion and finalizer rules; returns the object."""
        entry, _ = self.delete_entry(
            plural,
            namespace,
            name,
            grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            preconditions=preconditions,
        )
        return json.loads(entry.raw)  # type: ignore[no-any-return]

    def delete_entry(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: JSON | None = None,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """`delete`; the last entry and whether the object is gone (dry run: the object)."""
        rtype = self.rtype(plural)
        old = self.storage.entry(plural, namespace, name)
        old_meta = old.obj["metadata"]
        deletion.check_preconditions(rtype, name, old_meta, preconditions)
        deletion.check_propagation_policy(propagation_policy)
        if dry_run:
            return old, False
        ns = old_meta.get("namespace", "") if rtype.namespaced else ""
        if plural == "namespaces":
            if old_meta.get("deletionTimestamp"):
                return old, False
            new = deletion.terminating_namespace(old)
            return self.storage.commit(plural, "MODIFIED", ns, name, new, old), False
        uid = old_meta.get("uid", "")
        owners = self.owners
        if propagation_policy == "Orphan" and owners is not None:
            owners.orphan_dependents(uid)
        grace = self._strategies[plural].grace_period(old.obj, grace_period_seconds)
        new = json.loads(old.raw)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if (
            propagation_policy == "Foreground"
            and owners is not None
            and owners.has_dependents(uid)
            and "foregroundDeletion" not in finalizers
        ):
            finalizers.append("foregroundDeletion")
            meta["finalizers"] = finalizers
        if old_meta.get("deletionTimestamp"):
            current = int(old_meta.get("deletionGracePeriodSeconds", 0))
            # A second delete may only shorten the grace period (rest/delete.go BeforeDelete).
            if grace >= current and not (
                propagation_policy == "Foreground" and finalizers != old_meta.get("finalizers")
            ):
                return old, False
            if grace < current:
                meta["deletionTimestamp"] = now_rfc3339(grace)
                meta["deletionGracePeriodSeconds"] = grace
        if not (grace > 0 or finalizers):
            return self._remove(plural, ns, name, new, old), True
        if not old_meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now_rfc3339(grace)
            meta["deletionGracePeriodSeconds"] = grace
            if "generation" in meta:
                meta["generation"] = int(meta["generation"]) + 1
        if not finalizers and meta.get("deletionGracePeriodSeconds") == 0:
            return self._remove(plural, ns, name, new, old), True
        entry = self.storage.commit(plural, "MODIFIED", ns, name, new, old)
        if "foregroundDeletion" in finalizers and owners is not None:
            owners.deleting_in_foreground(uid)
            found = self.storage.find(plural, ns, name)
            if found is None:
                return entry, True
            entry = found
        return entry, False

    def _remove(self, plural: str, ns: str, name: str, last: JSON, old: Entry) -> Entry:
        entry = self.storage.commit(plural, "DELETED", ns, name, last, old)
        self._strategies[plural].release(last)
        if plural == CRD_PLURAL:
            for custom_plural, custom in list(self.custom.items()):
                if custom.crd_name == name:
                    self._unserve(custom_plural)
        if self.owners is not None:
            self.owners.removed(entry.obj)
        return entry

    def finalize_namespace(self, name: str) -> None:
        """Remove a Terminating namespace (the namespace controller calls this once it is empty).

        Anything still in it is removed with it, without graceful deletion.
        """
        old = self.storage.entry("namespaces", None, name)
        for plural, rtype in self.storage.types.items():
            if plural == "namespaces" or not rtype.namespaced:
                continue
            for obj_name, entry in list(self.storage.names(plural, name).items()):
                self._remove(plural, name, obj_name, json.loads(entry.raw), entry)
        last = json.loads(old.raw)
        last.setdefault("spec", {})["finalizers"] = []
        self._remove("namespaces", "", name, last, old)


def _copy(obj: Any) -> Any:
    """A deep copy; JSON round-trips are faster than copy.deepcopy for JSON data."""
    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError):
        return copy.deepcopy(obj)


def _spec_of(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}
