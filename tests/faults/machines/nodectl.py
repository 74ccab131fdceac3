"""A `systemctl` stand-in inside a docker e2e node: kubelet and containerd are the agent's.

    python nodectl.py SOCKET stop|start|is-active [--quiet] kubelet|containerd

Units map to the simulated node agent's control socket (stop-kubelet, start-runtime, ...).
"""

from __future__ import annotations

import sys

from pytest_k8sdr.sim.node import control

OPS = {
    ("stop", "kubelet"): "stop-kubelet",
    ("start", "kubelet"): "start-kubelet",
    ("stop", "containerd"): "stop-runtime",
    ("start", "containerd"): "start-runtime",
}
STATE_KEY = {"kubelet": "kubelet", "containerd": "runtime"}


def main(argv: list[str]) -> int:
    socket_path, *args = [a for a in argv if a != "--quiet"]
    verb, *units = args
    for unit in units:
        if unit not in STATE_KEY:
            print(f"Unit {unit}.service not found.", file=sys.stderr)
            return 5
        if verb == "is-active":
            state = control.send(socket_path, "status", timeout=5)
            if state.get(STATE_KEY[unit]) != "running":
                return 3
        elif (verb, unit) in OPS:
            control.send(socket_path, OPS[(verb, unit)], timeout=5)
        else:
            print(f"unsupported: systemctl {verb} {unit}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
