"""A real nginx inside a Docker container, for the `docker exec` config host.

No image can be pulled here, so the image is imported from a tiny root filesystem: static
busybox (sh, cat, cp, mv, rm, sleep) and this machine's nginx binary with the libraries `ldd`
lists. The container uses the host network, so nginx listens on a loopback address.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_BUSYBOX_TOOLS = ("sh", "cat", "cp", "mv", "rm", "sleep", "mkdir", "ls")


def docker_usable() -> str | None:
    """Why the Docker tests cannot run, or None when they can."""
    for tool in ("docker", "nginx", "busybox", "ldd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer"
    if info.returncode != 0:
        return "no Docker engine is running (start dockerd)"
    return None


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, check=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def _rootfs_tar() -> bytes:
    nginx = shutil.which("nginx")
    busybox = shutil.which("busybox")
    assert nginx is not None
    assert busybox is not None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)

        def add_bytes(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "tmp", "lb", "usr", "usr/sbin", "lib", "lib64", "var", "var/log"):
            add_dir(d)
        add_dir("var/log/nginx")
        add_dir("lib/x86_64-linux-gnu")
        tar.add(busybox, "bin/busybox")
        for tool in _BUSYBOX_TOOLS:
            link = tarfile.TarInfo(f"bin/{tool}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        tar.add(nginx, "usr/sbin/nginx")
        for lib in _libraries(nginx):
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
        add_bytes("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
        add_bytes("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


@pytest.fixture(scope="session")
def nginx_image() -> str:
    """The image's tag; imported once per content (the tag carries a hash of the rootfs)."""
    reason = docker_usable()
    if reason:
        pytest.skip(reason)
    data = _rootfs_tar()
    tag = f"k8sdr-test/lb-nginx:{hashlib.sha256(data).hexdigest()[:12]}"
    have = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    if have.returncode != 0:
        subprocess.run(["docker", "import", "-", tag], input=data, capture_output=True, check=True)
    return tag


@pytest.fixture
def nginx_container(nginx_image: str) -> Iterator[str]:
    """A running container (host network) with nothing started in it yet; removed afterwards."""
    name = f"k8sdr-lb-test-{uuid.uuid4().hex[:8]}"
    run = ["docker", "run", "-d", "--rm", "--network", "host", "--name", name]
    subprocess.run(
        [*run, nginx_image, "/bin/sleep", "3600"],
        capture_output=True,
        check=True,
    )
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def container_nginx_dir() -> Path:
    """Where the container's nginx keeps its config, pid file and temp files."""
    return Path("/lb")
