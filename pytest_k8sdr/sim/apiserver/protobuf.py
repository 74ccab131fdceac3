r"""Decoding of the protobuf request bodies kubectl's typed clients send.

kubectl (≥1.32) encodes typed-client bodies as `application/vnd.kubernetes.protobuf`: the
magic `k8s\\0`, then a `runtime.Unknown` (typeMeta, raw). One generic decoder turns the raw
message into the kind's JSON form, driven by the schema tables of `protoschema` (field
numbers from k8s.io/api's and apimachinery's generated.proto). A kind without a table is 415
with a message saying so; fields a table does not name are skipped.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from typing import Any

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apiserver.protoschema import KINDS, MESSAGES

__all__ = ["MAGIC", "decode_message", "decode_protobuf_body"]

MAGIC = b"k8s\x00"
# A kind whose table is the only one of that name is found without its apiVersion too.
_BY_KIND = {
    kind: name
    for (_v, kind), name in KINDS.items()
    if sum(1 for (_w, k) in KINDS if k == kind) == 1 or kind == "DeleteOptions"
}
_SCALARS = frozenset({"string", "bytes", "int", "bool", "double"})


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


def _signed(value: int) -> int:
    # int32/int64 varints: negative numbers arrive as 64-bit two's complement.
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes) -> str | None:
    parts = {n: v for n, _w, v in _fields(data)}
    seconds = _signed(int(parts.get(1, 0)))
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(nanos: int) -> str:
    seconds, rest = divmod(nanos, 1_000_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if minutes or hours else ""
    frac = f".{rest:09d}".rstrip("0") if rest else ""
    return f"{text}{seconds}{frac.rstrip('.')}s"


def _value(kind: str, wire: int, value: Any) -> Any:
    """One field value of a (non-repeated) type."""
    if kind == "string":
        return bytes(value).decode()
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "int":
        return _signed(int(value))
    if kind == "bool":
        return bool(value)
    if kind == "double":
        return float(struct.unpack("<d", bytes(value))[0])
    if kind == "quantity":
        return bytes({n: v for n, _w, v in _fields(bytes(value))}.get(1, b"")).decode()
    if kind == "intorstr":
        parts = {n: v for n, _w, v in _fields(bytes(value))}
        if int(parts.get(1, 0)) == 1:
            return bytes(parts.get(3, b"")).decode()
        return _signed(int(parts.get(2, 0)))
    if kind == "time":
        return _time(bytes(value))
    if kind == "duration":
        return _duration(_signed(int({n: v for n, _w, v in _fields(bytes(value))}.get(1, 0))))
    if kind == "raw":
        raw = bytes({n: v for n, _w, v in _fields(bytes(value))}.get(1, b""))
        return json.loads(raw) if raw else None
    return decode_message(bytes(value), kind)


def _packed(kind: str, value: bytes) -> list[Any]:
    out: list[Any] = []
    pos = 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_value(kind, 0, item))
    return out


def decode_message(data: bytes, name: str) -> dict[str, Any]:
    """Decode one message by its table in `protoschema.MESSAGES`; unknown fields are skipped."""
    schema = MESSAGES[name]
    out: dict[str, Any] = {}
    for num, wire, value in _fields(data):
        spec = schema.get(num)
        if spec is None:
            continue
        field, kind = spec
        keep_zero = kind.endswith("!")
        kind = kind.rstrip("!")
        if kind.startswith("inline:"):
            out.update(decode_message(bytes(value), kind[len("inline:") :]))
        elif kind.startswith("map:"):
            entry = {n: (w, v) for n, w, v in _fields(bytes(value))}
            key = bytes(entry.get(1, (2, b""))[1]).decode()
            item_wire, item = entry.get(2, (2, b""))
            out.setdefault(field, {})[key] = _value(kind[4:], item_wire, item)
        elif kind.startswith("[]"):
            item_kind = kind[2:]
            if wire == 2 and item_kind in ("int", "bool"):
                out.setdefault(field, []).extend(_packed(item_kind, bytes(value)))
            else:
                out.setdefault(field, []).append(_value(item_kind, wire, value))
        else:
            decoded = _value(kind, wire, value)
            # Go's JSON leaves out zero values of omitempty fields; proto2 sends them all.
            if decoded is None or (not keep_zero and kind in _SCALARS and not decoded):
                continue
            out[field] = decoded
    return out


def decode_protobuf_body(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded request body; 415 for kinds without a table."""
    if not raw.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "the protobuf body lacks the k8s magic prefix")
    try:
        unknown = {n: v for n, _w, v in _fields(raw[len(MAGIC) :])}
        type_meta = {n: bytes(v).decode() for n, _w, v in _fields(bytes(unknown.get(1, b"")))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        name = KINDS.get((api_version, kind)) or _BY_KIND.get(kind)
        if name is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"protobuf bodies of kind {kind!r} ({api_version}) are not supported by the "
                "simulator; send JSON (e.g. `kubectl create -f` or `kubectl apply -f`)",
            )
        body = decode_message(bytes(unknown.get(2, b"")), name)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"malformed protobuf body: {exc}") from exc
    if kind != "DeleteOptions":
        body = {"apiVersion": api_version, "kind": kind, **body}
    return body
