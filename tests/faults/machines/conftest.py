"""Fixtures of the machine driver tests.

`stack` is a bare undo stack: the plugin's `undo` fixture journals to the session's cluster,
which the driver tests do not need (the e2e module runs a simulated cluster of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from machines_helpers import FakeNode, KindNodes, Sshd, build_node_image, ensure_docker_engine

from pytest_k8sdr.undo import UndoStack


@pytest.fixture
def stack() -> Iterator[UndoStack]:
    undo = UndoStack()
    yield undo
    undo.unwind()


@pytest.fixture
def fakenode(tmp_path: Path, stack: UndoStack) -> Iterator[FakeNode]:
    node = FakeNode(tmp_path / "fakenode")
    assert node.run("boot").returncode == 0
    yield node
    stack.unwind()  # undo on the machine while it is still there
    node.run("crash")


@pytest.fixture(scope="session")
def node_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("docker")
    ensure_docker_engine(root / "dockerd.log")
    return build_node_image(root)


@pytest.fixture
def kind_nodes(node_image: str, tmp_path: Path, stack: UndoStack) -> Iterator[KindNodes]:
    nodes = KindNodes(node_image, tmp_path, [])
    yield nodes
    stack.unwind()  # undo on the containers while they are still there
    nodes.remove_all()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
