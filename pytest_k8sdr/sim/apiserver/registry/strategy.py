"""What the generic registry store asks of each resource: its strategy.

Upstream every resource has a strategy (pkg/registry/<group>/<resource>/strategy.go):
PrepareForCreate, defaulting, Validate, and the storage's hooks (an allocator for Services,
graceful deletion for Pods). A family module (`core`, `apps`, ...) declares each of its kinds
as one `Resource(ResourceType(...), StrategyClass)`; `resources` collects them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType

__all__ = [
    "Cause",
    "ResetStatus",
    "Resource",
    "Strategy",
    "Version",
    "cause",
    "forbidden",
    "immutable",
    "required",
    "unsupported",
    "validate_metadata",
]

Cause = dict[str, str]

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def cause(field: str, message: str, kind: str = "FieldValueInvalid") -> Cause:
    """One field cause of a 422 Invalid."""
    return {"type": kind, "message": message, "field": field}


def required(field: str, detail: str = "") -> Cause:
    """A missing field, worded as apimachinery's field.Required."""
    return cause(
        field, f"Required value: {detail}" if detail else "Required value", "FieldValueRequired"
    )


def forbidden(field: str, detail: str) -> Cause:
    """field.Forbidden."""
    return cause(field, f"Forbidden: {detail}", "FieldValueForbidden")


def _go_value(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def unsupported(field: str, value: object, supported: tuple[str, ...]) -> Cause:
    """field.NotSupported: `Unsupported value: "x": supported values: "a", "b"`."""
    listed = ", ".join(f'"{s}"' for s in supported)
    return cause(
        field,
        f"Unsupported value: {_go_value(value)}: supported values: {listed}",
        "FieldValueNotSupported",
    )


def immutable(field: str, value: object) -> Cause:
    """As ValidateImmutableField: `Invalid value: ...: field is immutable`."""
    return cause(field, f"Invalid value: {_go_value(value)}: field is immutable")


class Strategy:
    """The defaults: no status reset, no defaulting, nothing validated beyond metadata.

    Validation covers what a client of the simulator can trip over and answers 422 with
    field causes as pkg/apis/*/validation does; everything else is accepted.
    """

    # metadata.generation counts spec changes (not for kinds without a spec upstream).
    track_generation: ClassVar[bool] = True
    # How metadata.name is validated: "subdomain" (RFC 1123), "label" or "dns1035".
    name_rule: ClassVar[str] = "subdomain"
    # The subresources whose writes this strategy prepares and validates itself (upstream: a
    # strategy per subresource, as csrApprovalStrategy); others follow the store's rules.
    own_subresources: ClassVar[frozenset[str]] = frozenset()

    def prepare_for_create(self, obj: JSON) -> None:
        """Reset what a create may not set (PrepareForCreate), e.g. the status."""

    def prepare_for_update(self, new: JSON, old: JSON, subresource: str | None) -> None:
        """Reset what an update may not change (PrepareForUpdate).

        `subresource` is None for the object itself, else one of `own_subresources`.
        """

    def default(self, obj: JSON) -> None:
        """Fill in the defaults upstream sets on create and update (pkg/apis/*/v1/defaults.go)."""

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Causes for the kind's own bad fields (metadata is checked by the store)."""
        return []

    def validate_subresource(self, subresource: str, new: JSON, old: JSON) -> list[Cause]:
        """Causes for a bad write to one of `own_subresources`."""
        return []

    def allocate(self, obj: JSON, old: JSON | None) -> None:
        """Take what the object needs from a shared range, once it is valid (ApiError if not)."""

    def release(self, obj: JSON) -> None:
        """Give back what `allocate` took, once the object is gone."""

    def restore(self, obj: JSON) -> None:
        """Take again what a stored object holds, when a restarted server reads its store."""

    def grace_period(self, obj: JSON, requested: int | None) -> int:
        """Seconds of graceful deletion (0: removed at once, unless finalizers hold it)."""
        return 0


class ResetStatus(Strategy):
    """A kind whose create starts from an empty status (its controller owns the status)."""

    # Status fields without omitempty upstream show as 0 on a fresh object.
    empty_status: ClassVar[JSON] = {}

    def prepare_for_create(self, obj: JSON) -> None:
        """Replace the status by the empty one."""
        obj["status"] = copy.deepcopy(self.empty_status)


@dataclass(frozen=True)
class Version:
    """The stored objects served at another group/version, converted both ways.

    As upstream serves one storage at several versions (autoscaling/v1 and v2 HPAs) or
    groups (core and events.k8s.io Events): `to_external` turns a stored object into this
    version's form, `to_internal` the reverse. Both take and return fresh dicts.
    """

    type: ResourceType
    to_external: Callable[[JSON], JSON]
    to_internal: Callable[[JSON], JSON]


@dataclass(frozen=True)
class Resource:
    """One served kind: its type, how the registry treats it, other versions serving it."""

    type: ResourceType
    strategy: Callable[[], Strategy] = Strategy
    versions: tuple[Version, ...] = ()


def validate_name(rule: str, name: str) -> list[Cause]:
    """Causes for a bad metadata.name (empty list when fine)."""
    if not name:
        return [
            cause(
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            )
        ]
    if rule == "dns1035":
        ok = bool(_DNS1035_LABEL.match(name)) and len(name) <= 63
        text = (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character"
        )
    elif rule == "label":
        ok = bool(_DNS1123_LABEL.match(name)) and len(name) <= 63
        text = (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character"
        )
    else:
        ok = bool(_DNS1123_SUBDOMAIN.match(name)) and len(name) <= 253
        text = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    if ok:
        return []
    return [cause("metadata.name", f'Invalid value: "{name}": {text}')]


def validate_metadata(strategy: Strategy, obj: JSON, old: JSON | None) -> list[Cause]:
    """Causes for a bad name (on create) and bad label values."""
    causes: list[Cause] = []
    meta = obj.get("metadata") or {}
    if old is None:
        causes += validate_name(strategy.name_rule, str(meta.get("name", "")))
    for value in (meta.get("labels") or {}).values():
        if not isinstance(value, str):
            causes.append(
                cause("metadata.labels", f"Invalid value: {value!r}: label values must be strings")
            )
        elif len(value) > 63 or (value and not _LABEL_VALUE.match(value)):
            causes.append(
                cause(
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    return causes
