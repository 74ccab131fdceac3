"""Generate the simulator's OpenAPI v3 schemas, one file per served group/version.

    python ci/gen/openapi_schemas.py

For every kind the registry serves (`GROUP_VERSIONS`, and the reviews' `REVIEW_TYPES`), the
schema of the official Python client's model of that kind (itself generated from upstream's
OpenAPI document) is written, with everything it refers to, to
pytest_k8sdr/sim/apiserver/openapi/<group>_<version>.json as {"kinds": {kind: schema name},
"schemas": {name: schema}}. A kind the client has no model for is left out (its OpenAPI entry
says the server accepts any fields). Run it again when a group or kind is added; the output is
committed.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes.client.models as models

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pytest_k8sdr.sim.apiserver.registry.resources import GROUP_VERSIONS  # noqa: E402
from pytest_k8sdr.sim.apiserver.registry.reviews import REVIEW_TYPES  # noqa: E402

# The served kinds and the create-only reviews (which the store does not hold).
SERVED = {**GROUP_VERSIONS, **REVIEW_TYPES}

OUT = ROOT / "pytest_k8sdr" / "sim" / "apiserver" / "openapi"
_VERSION_PREFIX = re.compile(r"^(?:[A-Z][a-z]+)*V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])")
_BOILERPLATE = re.compile(r"\n\nAttributes:\n.*", re.S)
_CLASSES = {name: cls for name, cls in inspect.getmembers(models, inspect.isclass)}


def _model(group: str, version: str, kind: str) -> Any:
    prefix = "".join(p.capitalize() for p in group.split(".")[0].split("-")) if group else ""
    candidates = [
        f"{version.capitalize()}{kind}",
        f"{prefix}{version.capitalize()}{kind}",
        f"Core{version.capitalize()}{kind}",
    ]
    if group == "events.k8s.io":
        candidates.insert(0, f"Events{version.capitalize()}{kind}")
    for name in candidates:
        cls = _CLASSES.get(name)
        if cls is not None and hasattr(cls, "model_json_schema"):
            return cls
    return None


def _short(model_name: str) -> str:
    return _VERSION_PREFIX.sub("", model_name)


def _clean(node: Any, rename: dict[str, str]) -> Any:
    """JSON Schema from pydantic, in the shape upstream's OpenAPI v3 documents have."""
    if isinstance(node, list):
        return [_clean(n, rename) for n in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            merged = {**{k: v for k, v in node.items() if k != "anyOf"}, **options[0]}
            return _clean(merged, rename)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "default", "additionalProperties") and not isinstance(value, dict):
            continue
        if key == "$ref":
            out["$ref"] = "#/components/schemas/" + rename[value.rsplit("/", 1)[-1]]
        elif key == "description":
            out[key] = _BOILERPLATE.sub("", str(value)).strip()
        elif key == "properties":
            out[key] = {k: _clean(v, rename) for k, v in value.items()}
        else:
            out[key] = _clean(value, rename)
    if "$ref" in out and len(out) > 1:
        # OpenAPI v3.0 ignores siblings of $ref; upstream wraps them in allOf.
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


def generate(group: str, version: str) -> dict[str, Any]:
    """The schemas of one group/version."""
    prefix = f"io.k8s.api.{group.split('.')[0] if group else 'core'}.{version}"
    kinds: dict[str, str] = {}
    schemas: dict[str, Any] = {}
    for rtype in SERVED[group][version]:
        cls = _model(group, version, rtype.kind)
        if cls is None:
            continue
        raw = cls.model_json_schema(by_alias=True)
        defs = raw.pop("$defs", {})
        rename = {n: f"{prefix}.{_short(n)}" for n in defs}
        rename[cls.__name__] = f"{prefix}.{rtype.kind}"
        for name, schema in defs.items():
            schemas.setdefault(rename[name], _clean(schema, rename))
        top = _clean(raw, rename)
        top["x-kubernetes-group-version-kind"] = [
            {"group": group, "version": version, "kind": rtype.kind}
        ]
        schemas[rename[cls.__name__]] = top
        kinds[rtype.kind] = rename[cls.__name__]
    return {"kinds": kinds, "schemas": dict(sorted(schemas.items()))}


def main() -> int:
    """Write every group/version's file."""
    OUT.mkdir(parents=True, exist_ok=True)
    for group, versions in SERVED.items():
        for version in versions:
            doc = generate(group, version)
            path = OUT / f"{group or 'core'}_{version}.json"
            path.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n")
            counts = f"{len(doc['kinds'])} kinds, {len(doc['schemas'])} schemas"
            print(f"{path.relative_to(ROOT)}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
