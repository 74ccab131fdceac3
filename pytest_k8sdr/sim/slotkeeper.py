"""`python -m pytest_k8sdr.sim.slotkeeper`: keep a stopped control plane's address slot.

While a cluster's control plane is down (`SimCluster.stop_control_plane`), this small
process holds the slot's lock in its place, so no other simulated cluster takes the
cluster's addresses, and any process (the run, `k8sdr recover`, the CLI) can start the
control plane again: it ends the keeper recorded in the state dir and takes the lock. The
keeper ends with the cluster's owner, as the control plane and the agents do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from pytest_k8sdr.sim.processes import watch_owner

__all__ = ["main"]


async def _keep(owner_pid: int | None) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    if owner_pid is not None:
        watch_owner(owner_pid, done.set)
    await done.wait()


def main(argv: list[str] | None = None) -> None:
    """Hold the slot lock until SIGTERM, SIGINT or the owner's exit."""
    parser = argparse.ArgumentParser(prog="python -m pytest_k8sdr.sim.slotkeeper")
    parser.add_argument("--state-dir", required=True, help="the cluster's state dir")
    parser.add_argument("--slot-fd", type=int, required=True, help="the slot lock's fd")
    parser.add_argument("--owner-pid", type=int, default=None, help="end when this pid ends")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_keep(args.owner_pid))
    finally:
        os.close(args.slot_fd)


if __name__ == "__main__":
    main()
