"""`pytest_k8sdr.sim`'s public face: `__all__` is exactly what users may import."""

from __future__ import annotations

import types

import pytest_k8sdr.sim as sim


def test_all_names_resolve_and_are_listed_once() -> None:
    assert len(sim.__all__) == len(set(sim.__all__))
    for name in sim.__all__:
        assert hasattr(sim, name), name


def test_no_public_name_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(sim).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(sim.__all__)
