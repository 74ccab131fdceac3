"""Where the cluster comes from: the embedded simulator, kind, or an existing kubeconfig context.

The plugin reaches every backend the same way: through a kubeconfig. The simulator is started
through its launcher, kind through pytest-kind-ng's `KindCluster`. A simulator the session
launches is journaled before it starts (`SimClusterLaunched`), so `k8sdr recover` stops one a
killed run left running.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.config import Settings, target_context
from pytest_k8sdr.errors import ConfigError, ToolError
from pytest_k8sdr.journal import JournalRecord
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

log = logging.getLogger(__name__)

#: The kind cluster config the kind backend creates clusters from: package data, so it is there
#: however the package was installed (ci/kind-config.yaml links to it in a checkout).
KIND_CONFIG = "kind-config.yaml"


@contextmanager
def kind_config() -> Iterator[Path]:
    """The kind cluster config as a file on disk, for as long as the block runs."""
    resource = resources.files("pytest_k8sdr") / KIND_CONFIG
    if not resource.is_file():
        raise ToolError(f"the package lacks its kind config {KIND_CONFIG} (a broken install?)")
    with resources.as_file(resource) as path:
        yield path


@dataclass
class Backend:
    """A running cluster for the session and what is needed to stop it."""

    name: str
    cluster: Cluster
    kubeconfig: Path
    context: str | None = None
    sim: Any = None  # pytest_k8sdr.sim.SimCluster when name == "sim"
    #: On a dry run's twin (`pytest_k8sdr.plan`): the target it stands for, opened read-only.
    target: Backend | None = None
    _owned: list[Any] = field(default_factory=list)
    _launched: tuple[UndoStack, UndoEntry] | None = None

    def close(self) -> None:
        """Stop what this backend started (never a cluster it only connected to)."""
        self.cluster.close()
        if self._launched is not None:
            undo, entry = self._launched
            undo.run(entry)
        while self._owned:
            owned = self._owned.pop()
            if hasattr(owned, "stop"):
                owned.stop()
            elif hasattr(owned, "delete"):
                owned.delete()


@disruption_kind
@dataclass(frozen=True)
class SimClusterLaunched(Disruption):
    """A simulated cluster a run launched; undone by stopping it (API server and node agents).

    It is the session's cluster, so what the run did through the API or to its agents ends
    with it: `k8sdr recover` closes those entries as moot rather than undo them one by one.
    """

    kind = "sim-cluster"
    disruptive = False
    state_dir: str

    def summary(self) -> str:
        """``launch a simulated cluster in DIR``."""
        return f"launch a simulated cluster in {self.state_dir}"

    def undoing(self) -> str:
        """``stop the simulated cluster in DIR``."""
        return f"stop the simulated cluster in {self.state_dir}"

    def contains(self, other: JournalRecord, kind: type[Disruption] | None) -> bool:
        """What the run did inside this cluster: through its API, or to its node agents."""
        if other.kind in ("machine", "control-plane"):
            return other.data.get("state_dir") == self.state_dir
        if other.kind == "zone":
            dirs = {m.get("state_dir") for m in other.data.get("machines") or ()}
            return dirs == {self.state_dir}
        return kind is not None and kind.needs_cluster

    def undo(self, env: UndoEnv) -> None:
        """Attach to the cluster of the state directory and stop it; nothing runs there: done."""
        from pytest_k8sdr.sim import SimCluster, SimLaunchError

        try:
            sim = SimCluster.attach(Path(self.state_dir))
        except SimLaunchError as exc:  # attach fails exactly when no cluster runs there
            log.info("no simulated cluster to stop in %s: %s", self.state_dir, exc)
            return
        sim.stop()


def open_backend(
    settings: Settings,
    workdir: Path,
    *,
    sim_workers: int = 3,
    sim_options: dict[str, Any] | None = None,
    undo: UndoStack | None = None,
    read_only: bool = False,
) -> Backend:
    """Bring up (or connect to) the backend the settings ask for.

    A simulator is registered on `undo` (a private stack when None) before it is started.
    `read_only` opens the cluster facade read-only (the dry run): it refuses every write.
    """
    if settings.backend == "sim":
        shape: dict[str, Any] = {"workers": sim_workers}
        options = dict(sim_options or {})
        if settings.sim_config is not None:
            # The file is the shape: it replaces the one `k8sdr_sim_options` gives (zones, ...).
            shape = _kind_shape(settings.sim_config)
            for key in SHAPE_OPTIONS:
                options.pop(key, None)
        return launch_sim(
            (workdir / "sim").absolute(),
            undo if undo is not None else UndoStack(),
            read_only=read_only,
            profile=settings.profile,
            **shape,
            **options,
        )
    if settings.backend == "kind":
        return _open_kind(settings, workdir, read_only=read_only)
    context = target_context(settings, os.environ)
    path = settings.kubeconfig
    cluster = Cluster.from_kubeconfig(path, context, read_only=read_only)
    return Backend("kubeconfig", cluster, path or Path("~/.kube/config"), context=context)


def launch_sim(
    state_dir: Path,
    undo: UndoStack,
    *,
    read_only: bool = False,
    name: str = "the simulated cluster",
    **start: Any,
) -> Backend:
    """Start a simulated cluster in `state_dir`, journaled on `undo` (`SimClusterLaunched`) first.

    Every simulator the plugin launches comes through here: the session's and a dry run's twin
    (`pytest_k8sdr.twin`). The backend's `close` stops it and closes its entry; a killed run
    leaves the entry open for `k8sdr recover`. `start` is `SimCluster.start`'s keywords; bad
    ones (ValueError, refused before anything started) are a ConfigError, a simulator that
    did not come up a ToolError, each naming `name`.
    """
    from pytest_k8sdr.sim import SimCluster, SimError

    entry = undo.push(SimClusterLaunched(str(state_dir)))
    try:
        sim = SimCluster.start(state_dir, **start)
        cluster = Cluster.from_kubeconfig(sim.kubeconfig_path, read_only=read_only)
    except BaseException as exc:
        undo.run(entry)
        if isinstance(exc, ValueError):
            raise ConfigError(f"{name}: {exc}") from exc
        if isinstance(exc, SimError):  # the simulator's one root, translated here once
            raise ToolError(f"{name} did not start: {exc}") from exc
        raise
    return Backend("sim", cluster, sim.kubeconfig_path, sim=sim, _launched=(undo, entry))


# `SimCluster.start`'s keywords that say which nodes there are: a kind config gives them all.
SHAPE_OPTIONS = ("workers", "zones", "hollow_nodes", "nodes")


def _kind_shape(path: Path) -> dict[str, Any]:
    """`SimCluster.start`'s nodes from a kind config (setting `sim_config`), its notes logged."""
    from pytest_k8sdr.sim.kindconfig import KindConfigError, load_kind_config

    try:
        kind = load_kind_config(path)
    except KindConfigError as exc:  # validated at start; the file may have changed since
        raise ConfigError(f"sim_config: {exc}") from exc
    for note in kind.notes:
        log.info("sim_config: %s", note)
    return {"workers": 0, "nodes": kind.nodes}


def require_kind() -> Any:
    """pytest-kind-ng's `KindCluster`; ConfigError saying how to install it when it is missing."""
    try:
        from pytest_kind import KindCluster
    except ImportError as exc:
        raise ConfigError(
            "--k8sdr-backend=kind needs pytest-kind-ng, which is not installed: "
            "pip install 'pytest-k8sdr[kind]'"
        ) from exc
    return KindCluster


def _open_kind(settings: Settings, workdir: Path, *, read_only: bool) -> Backend:
    kind_cluster = require_kind()
    name = settings.kind_cluster or "k8sdr"
    kubeconfig = workdir / f"kind-{name}.kubeconfig"
    # A kind already on PATH (as CI installs it) is used instead of a download.
    installed = shutil.which("kind")
    kind = kind_cluster(
        name, kubeconfig=kubeconfig, kind_path=Path(installed) if installed else None
    )
    owned: list[Any] = []
    if settings.kind_cluster is None:
        with kind_config() as config_file:
            kind.create(config_file=config_file)
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
    cluster = Cluster.from_kubeconfig(kubeconfig, read_only=read_only)
    return Backend("kind", cluster, kubeconfig, context=f"kind-{name}", _owned=owned)
