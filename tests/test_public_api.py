"""The package's one public face: `__all__` is exactly what users may import."""

from __future__ import annotations

import importlib
import pkgutil

import pytest_k8sdr
from pytest_k8sdr import errors


def test_all_names_resolve_and_are_listed_once() -> None:
    assert len(pytest_k8sdr.__all__) == len(set(pytest_k8sdr.__all__))
    for name in pytest_k8sdr.__all__:
        assert hasattr(pytest_k8sdr, name), name


def test_no_public_name_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(pytest_k8sdr).items()
        if not name.startswith("_")
        and not isinstance(value, type(pytest_k8sdr))
        and name != "annotations"  # from __future__
    }
    assert public <= set(pytest_k8sdr.__all__), public - set(pytest_k8sdr.__all__)


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(pytest_k8sdr.__path__, "pytest_k8sdr."):
        importlib.import_module(info.name)


def test_exception_tree_separates_tool_failures_from_cluster_failures() -> None:
    assert issubclass(errors.ClusterCheckFailed, AssertionError)
    assert issubclass(errors.SLOExceeded, errors.ClusterCheckFailed)
    assert not issubclass(errors.ToolError, AssertionError)
    for exc in (errors.ToolError, errors.ConfigError, errors.FaultError, errors.UndoError):
        assert issubclass(exc, errors.K8sdrError)
    slo = errors.SLOExceeded("self-heal", 10.0, 12.5)
    assert "self-heal" in str(slo)
    assert "12.50s" in str(slo)
