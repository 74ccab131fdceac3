"""The package's one public face: `__all__` is exactly what users may import."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest_k8sdr
from pytest_k8sdr import errors

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


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
    for api in (errors.NotFound, errors.Conflict, errors.Throttled, errors.ApiUnavailable):
        assert issubclass(api, errors.ApiError)
        assert issubclass(api, errors.ToolError)
    for busy in (errors.LockHeld, errors.LockLost, errors.RecoverRefused):
        assert issubclass(busy, errors.ToolError)
        assert not issubclass(busy, errors.ConfigError)  # nothing wrong with the settings
    assert issubclass(errors.WaitTimeout, errors.ClusterCheckFailed)
    slo = errors.SLOExceeded("self-heal", 10.0, 12.5)
    assert "self-heal" in str(slo)
    assert "12.50s" in str(slo)


def test_every_name_has_one_home_and_importing_the_package_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_k8sdr\n"
        "assert 'kubernetes' not in sys.modules, 'import pytest_k8sdr loaded the client'\n"
        "from pytest_k8sdr import Cluster, assert_no_split_brain, rebalance\n"
        "assert 'kubernetes' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # Each name is found in exactly the object its private module defines.
    for name in set(pytest_k8sdr.__all__) - {"__version__"}:
        value = getattr(pytest_k8sdr, name)
        homes = [h for h in pytest_k8sdr._HOMES if vars(importlib.import_module(h)).get(name)]
        assert homes, name
        assert all(vars(importlib.import_module(h))[name] is value for h in homes), name


def _imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            if node.module == "pytest_k8sdr":  # `from pytest_k8sdr import checks` is a module
                found += [f"pytest_k8sdr.{a.name}" for a in node.names]
    return found


def test_experiments_and_readme_examples_import_only_the_public_module() -> None:
    sources = {p.name: p.read_text() for p in sorted(EXPERIMENTS.glob("*.py"))}
    readme = (ROOT / "README.md").read_text()
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", readme, re.DOTALL)):
        sources[f"README python block {i + 1}"] = block
    submodules = {m.name for m in pkgutil.iter_modules(pytest_k8sdr.__path__)}
    for where, source in sources.items():
        for name in _imports(source):
            if not name.startswith("pytest_k8sdr"):
                continue
            assert name == "pytest_k8sdr" or (
                name.count(".") == 1 and name.split(".")[1] not in submodules
            ), f"{where} imports {name}: import it from pytest_k8sdr"
