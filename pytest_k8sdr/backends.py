"""Where the cluster comes from: the embedded simulator, kind, or an existing kubeconfig context.

The plugin reaches every backend the same way: through a kubeconfig. The simulator is started
through its launcher, kind through pytest-kind-ng's `KindCluster`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.config import Settings, target_context
from pytest_k8sdr.errors import ConfigError, ToolError

REPO_KIND_CONFIG = Path(__file__).resolve().parent.parent / "ci" / "kind-config.yaml"


@dataclass
class Backend:
    """A running cluster for the session and what is needed to stop it."""

    name: str
    cluster: Cluster
    kubeconfig: Path
    context: str | None = None
    sim: Any = None  # pytest_k8sdr.sim.SimCluster when name == "sim"
    _owned: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop what this backend started (never a cluster it only connected to)."""
        self.cluster.close()
        while self._owned:
            owned = self._owned.pop()
            if hasattr(owned, "stop"):
                owned.stop()
            elif hasattr(owned, "delete"):
                owned.delete()


def open_backend(
    settings: Settings,
    workdir: Path,
    *,
    sim_workers: int = 3,
    sim_options: dict[str, Any] | None = None,
) -> Backend:
    """Bring up (or connect to) the backend the settings ask for."""
    if settings.backend == "sim":
        from pytest_k8sdr.sim import SimCluster, SimError

        try:
            sim = SimCluster.start(
                workdir / "sim",
                workers=sim_workers,
                profile=settings.profile,
                **(sim_options or {}),
            )
        except ValueError as exc:  # bad sim options, refused before anything started
            raise ConfigError(f"sim backend: {exc}") from exc
        except SimError as exc:  # the simulator's one root, translated here once
            raise ToolError(f"the simulated cluster did not start: {exc}") from exc
        try:
            cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
        except Exception:
            sim.stop()
            raise
        return Backend("sim", cluster, sim.kubeconfig_path, sim=sim, _owned=[sim])
    if settings.backend == "kind":
        return _open_kind(settings, workdir)
    context = target_context(settings, os.environ)
    path = settings.kubeconfig
    cluster = Cluster.from_kubeconfig(path, context)
    return Backend("kubeconfig", cluster, path or Path("~/.kube/config"), context=context)


def _open_kind(settings: Settings, workdir: Path) -> Backend:
    try:
        from pytest_kind import KindCluster
    except ImportError as exc:
        raise ConfigError(
            "the kind backend needs pytest-kind-ng: pip install 'pytest-k8sdr[kind]'"
        ) from exc
    name = settings.kind_cluster or "k8sdr"
    kubeconfig = workdir / f"kind-{name}.kubeconfig"
    # A kind already on PATH (as CI installs it) is used instead of a download.
    installed = shutil.which("kind")
    kind = KindCluster(
        name, kubeconfig=kubeconfig, kind_path=Path(installed) if installed else None
    )
    owned: list[Any] = []
    if settings.kind_cluster is None:
        if not REPO_KIND_CONFIG.exists():
            raise ToolError(f"kind config {REPO_KIND_CONFIG} is missing")
        kind.create(config_file=REPO_KIND_CONFIG)
        owned.append(kind)
    else:
        # An existing cluster: KindCluster.create() would re-use it but leave the kubeconfig
        # empty, so export it ourselves; an unknown name is a clear error.
        kind.ensure_kind()
        listed = subprocess.run(
            [str(kind.kind_path), "get", "clusters"], capture_output=True, text=True, check=False
        )
        if name not in listed.stdout.split():
            raise ConfigError(
                f"kind cluster {name!r} does not exist (kind get clusters: "
                f"{', '.join(listed.stdout.split()) or 'none'})"
            )
        subprocess.run(
            [
                str(kind.kind_path),
                "export",
                "kubeconfig",
                f"--name={name}",
                f"--kubeconfig={kubeconfig}",
            ],
            check=True,
            capture_output=True,
        )
    cluster = Cluster.from_kubeconfig(kubeconfig)
    return Backend("kind", cluster, kubeconfig, context=f"kind-{name}", _owned=owned)
