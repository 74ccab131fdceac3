"""What the report tests in a browser share: the experiment's child run, headless Chromium.

The child pytest runs the load-balancer experiment's drain under traffic on the embedded
simulator; Chromium is run once on a page, and its screenshot decoded.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "experiments" / "test_load_balancer.py"
TEST_NAME = "test_lb_drain_with_traffic_running"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--virtual-time-budget=15000",
]


def run_experiment(scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the experiment `TEST_NAME` in a child pytest in `scratch`, with more files or options.

    The project's settings (strict markers, warnings as errors) apply to every file; the run's
    undo journal is `scratch/journal.jsonl`.
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            f"{EXPERIMENT}::{TEST_NAME}",
            *args,
            f"--k8sdr-journal={scratch / 'journal.jsonl'}",
        ],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def find_chromium() -> str | None:
    """Debian's `chromium` (or `chromium-browser`) on PATH, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def run_chromium(
    chromium: str, profile_dir: Path, url: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on `url` (a file or a loopback server) with a fresh profile."""
    assert url.startswith(("http://127.0.0.1:", "file:///")), url  # loopback only
    profile_dir.mkdir(parents=True)
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# A tiny PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes).
def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and the pixels of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert colour in (2, 6), colour
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind_byte, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        unfilter(kind_byte, line, prev, bpp)
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


def unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    """Undo one scanline's PNG filter in place (RFC 2083, section 6)."""
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            up_left = prev[i - bpp] if i >= bpp else 0
            p = left + up - up_left
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
            pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
            line[i] = (line[i] + pred) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
