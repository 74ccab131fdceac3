"""The package works installed from its wheel, not only from a checkout.

The wheel is built offline (no build isolation: the dev extras carry setuptools), installed
without its dependencies into a fresh virtual environment, and that environment borrows the
project's site-packages for the dependencies only: the package itself comes from the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOAD_THE_KIND_CONFIG = """
import pathlib, sys
import yaml
import pytest_k8sdr
from pytest_k8sdr.backends import kind_config

with kind_config() as path:
    config = yaml.safe_load(path.read_text())
print(pytest_k8sdr.__file__)
print(config["kind"], len(config["nodes"]))
"""


def test_the_kind_backend_finds_its_config_in_an_installed_wheel(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "pytest_k8sdr", source / "pytest_k8sdr", ignore=ignore)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("pytest_k8sdr-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", site, wheel], check=True
    )
    # The dependencies from the project's environment, after the wheel: a path line only, so
    # the checkout's editable-install hook in there is never run.
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    out = subprocess.run(
        [python, "-c", LOAD_THE_KIND_CONFIG],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split("\n")
    assert Path(out[0]).is_relative_to(site), out[0]  # the wheel's package, not the checkout's
    assert out[1] == "Cluster 4"  # one control plane and three workers
