r"""Decoding of the protobuf request bodies kubectl's typed clients send.

kubectl (≥1.32) encodes typed-client bodies as `application/vnd.kubernetes.protobuf`:
the magic `k8s\\0`, then a `runtime.Unknown` (typeMeta, raw). The simulator decodes the
kinds those kubectl commands send (drain's Eviction and DeleteOptions, `kubectl create
namespace|configmap|secret|deployment`), field numbers from the generated.proto files of
k8s.io/api and k8s.io/apimachinery. Other kinds are 415 with a message saying so.
"""

from __future__ import annotations

import base64
from typing import Any

from pytest_k8sdr.sim.apimachinery.errors import ApiError

MAGIC = b"k8s\x00"

# A schema maps a field number to (json name, type); a type is "string", "bytes", "int",
# "bool", ("msg", schema), ("map", value type) or ("list", type).
Schema = dict[int, tuple[str, Any]]

_OWNER_REF: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("list", ("msg", _OWNER_REF))),
    14: ("finalizers", ("list", "string")),
}
_PRECONDITIONS: Schema = {1: ("uid", "string"), 2: ("resourceVersion", "string")}
_DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int"),
    2: ("preconditions", ("msg", _PRECONDITIONS)),
    3: ("orphanDependents", "bool"),
    4: ("propagationPolicy", "string"),
    5: ("dryRun", ("list", "string")),
}
_LABEL_SELECTOR_REQ: Schema = {
    1: ("key", "string"),
    2: ("operator", "string"),
    3: ("values", ("list", "string")),
}
_LABEL_SELECTOR: Schema = {
    1: ("matchLabels", ("map", "string")),
    2: ("matchExpressions", ("list", ("msg", _LABEL_SELECTOR_REQ))),
}
_CONTAINER_PORT: Schema = {
    1: ("name", "string"),
    2: ("hostPort", "int"),
    3: ("containerPort", "int"),
    4: ("protocol", "string"),
    5: ("hostIP", "string"),
}
_ENV_VAR: Schema = {1: ("name", "string"), 2: ("value", "string")}
_CONTAINER: Schema = {
    1: ("name", "string"),
    2: ("image", "string"),
    3: ("command", ("list", "string")),
    4: ("args", ("list", "string")),
    5: ("workingDir", "string"),
    6: ("ports", ("list", ("msg", _CONTAINER_PORT))),
    7: ("env", ("list", ("msg", _ENV_VAR))),
    8: ("resources", ("msg", {})),
    14: ("imagePullPolicy", "string"),
}
_POD_SPEC: Schema = {
    2: ("containers", ("list", ("msg", _CONTAINER))),
    3: ("restartPolicy", "string"),
    4: ("terminationGracePeriodSeconds", "int"),
    7: ("nodeSelector", ("map", "string")),
    8: ("serviceAccountName", "string"),
    10: ("nodeName", "string"),
    20: ("initContainers", ("list", ("msg", _CONTAINER))),
}
_POD_TEMPLATE: Schema = {1: ("metadata", ("msg", _OBJECT_META)), 2: ("spec", ("msg", _POD_SPEC))}
_DEPLOYMENT_SPEC: Schema = {
    1: ("replicas", "int"),
    2: ("selector", ("msg", _LABEL_SELECTOR)),
    3: ("template", ("msg", _POD_TEMPLATE)),
    4: ("strategy", ("msg", {1: ("type", "string")})),
    5: ("minReadySeconds", "int"),
    6: ("revisionHistoryLimit", "int"),
    7: ("paused", "bool"),
    9: ("progressDeadlineSeconds", "int"),
}
_OBJECT_REFERENCE: Schema = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
}
_META = ("metadata", ("msg", _OBJECT_META))
KINDS: dict[str, Schema] = {
    "DeleteOptions": _DELETE_OPTIONS,
    "Eviction": {1: _META, 2: ("deleteOptions", ("msg", _DELETE_OPTIONS))},
    "Namespace": {1: _META, 2: ("spec", ("msg", {1: ("finalizers", ("list", "string"))}))},
    "ConfigMap": {
        1: _META,
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: _META,
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    "Binding": {1: _META, 2: ("target", ("msg", _OBJECT_REFERENCE))},
    "Deployment": {1: _META, 2: ("spec", ("msg", _DEPLOYMENT_SPEC))},
    "ServiceAccount": {1: _META},
}


_OMIT_ZERO = frozenset({"hostPort", "generation", "minReadySeconds"})


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message; length-delimited values as bytes."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        num, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos : pos + length]
            pos += length
        elif wire == 1:
            value = data[pos : pos + 8]
            pos += 8
        elif wire == 5:
            value = data[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, wire, value))
    return out


def _scalar(kind: Any, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode()
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "int":
        # int32/int64 varints: negative numbers arrive as 64-bit two's complement.
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "bool":
        return bool(value)
    if isinstance(kind, tuple) and kind[0] == "msg":
        return decode_message(bytes(value), kind[1])
    raise ValueError(f"unknown field type {kind!r}")


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    """Decode one message by its schema; unknown fields are skipped."""
    out: dict[str, Any] = {}
    for num, _wire, value in _fields(data):
        spec = schema.get(num)
        if spec is None:
            continue
        name, kind = spec
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = {n: v for n, _w, v in _fields(bytes(value))}
            key = bytes(entry.get(1, b"")).decode()
            out.setdefault(name, {})[key] = _scalar(kind[1], entry.get(2, b""))
        elif isinstance(kind, tuple) and kind[0] == "list":
            out.setdefault(name, []).append(_scalar(kind[1], value))
        else:
            scalar = _scalar(kind, value)
            # Go's JSON omits empty strings and these zero ints (omitempty); proto2 sends them.
            if scalar == "" or (scalar == 0 and name in _OMIT_ZERO):
                continue
            out[name] = scalar
    return out


def decode_protobuf_body(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded request body; 415 for kinds not decoded here."""
    if not raw.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "the protobuf body lacks the k8s magic prefix")
    try:
        unknown = {n: v for n, _w, v in _fields(raw[len(MAGIC) :])}
        type_meta = {n: bytes(v).decode() for n, _w, v in _fields(bytes(unknown.get(1, b"")))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        schema = KINDS.get(kind)
        if schema is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"protobuf bodies of kind {kind!r} are not supported by the simulator; send JSON "
                "(e.g. `kubectl create -f` or `kubectl apply -f`)",
            )
        body = decode_message(bytes(unknown.get(2, b"")), schema)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"malformed protobuf body: {exc}") from exc
    if kind != "DeleteOptions":
        body = {"apiVersion": api_version, "kind": kind, **body}
    return body
