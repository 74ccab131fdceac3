"""Resource quantities and int-or-percent values.

apimachinery/pkg/api/resource and apimachinery/pkg/util/intstr.
"""

from __future__ import annotations

import math

__all__ = ["parse_quantity", "scaled_value"]

_SUFFIXES = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(value: object) -> float:
    """A resource.Quantity as a float ("100m" -> 0.1, "1Gi" -> 1073741824); 0 when unreadable."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                return 0.0
    try:
        return float(text)
    except ValueError:
        return 0.0


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: int = 0) -> int:
    """An IntOrString against a total (apimachinery intstr GetScaledValueFromIntOrPercent)."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)
