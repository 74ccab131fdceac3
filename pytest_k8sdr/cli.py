"""The `k8sdr` command: `k8sdr sim ...` drives the simulated cluster."""

from __future__ import annotations

import argparse
import sys

from pytest_k8sdr import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the `k8sdr` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "sim":
        # The simulator has its own command set; it never imports the plugin.
        from pytest_k8sdr.sim.cli import main as sim_main

        return sim_main(args[1:])
    parser = argparse.ArgumentParser(
        prog="k8sdr", description="Kubernetes disaster-recovery runbook as pytest tests."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("sim", help="start, stop and disrupt the simulated cluster (k8sdr sim --help)")
    parser.parse_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
