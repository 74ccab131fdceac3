"""The `k8sdr` command: `k8sdr sim ...` drives the simulated cluster, `k8sdr recover` cleans up."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_k8sdr import __version__

DEFAULT_JOURNAL = Path(".k8sdr/journal.jsonl")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8sdr", description="Kubernetes disaster-recovery runbook as pytest tests."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("sim", help="start, stop and disrupt the simulated cluster (k8sdr sim --help)")
    rec = sub.add_parser(
        "recover",
        help="undo every disruption a killed run left open",
        description="Undo, newest first, every disruption still open in a journal file (or in "
        "the k8sdr.io/journal annotations of the cluster's Nodes). Idempotent: run it again "
        "at will. Exit status: 0 when nothing is left open, 1 when something is, 2 for bad input.",
    )
    source = rec.add_mutually_exclusive_group()
    source.add_argument(
        "--journal",
        type=Path,
        default=None,
        help=f"the run's journal file (default: {DEFAULT_JOURNAL})",
    )
    source.add_argument(
        "--cluster",
        action="store_true",
        help="read the open entries from the cluster's Node annotations instead of a file",
    )
    rec.add_argument("--check", action="store_true", help="only report what is open; touch nothing")
    rec.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig (default: the journal's)"
    )
    rec.add_argument("--context", default=None, help="kubeconfig context (default: the journal's)")
    rec.add_argument(
        "--inventory",
        type=Path,
        default=None,
        help="machine inventory, for ssh and command machines (default: the journal's)",
    )
    rec.add_argument(
        "--api-deadline",
        type=float,
        default=30.0,
        help="seconds to keep retrying an API server that fails or is unreachable (default: 30)",
    )
    rec.add_argument(
        "--rejoin-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for an isolated node to re-register (default: 120)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `k8sdr` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "sim":
        # The simulator has its own command set; it never imports the plugin.
        from pytest_k8sdr.sim.cli import main as sim_main

        return sim_main(args[1:])
    parser = _parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if parsed.command == "recover":
        return _recover(parsed)
    parser.print_help()
    return 2


def _recover(args: argparse.Namespace) -> int:
    from pytest_k8sdr.errors import ConfigError, ToolError

    try:
        return _recover_checked(args)
    except ConfigError as exc:
        print(f"k8sdr recover: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"k8sdr recover: {exc}", file=sys.stderr)
        return 1


def _recover_checked(args: argparse.Namespace) -> int:
    from pytest_k8sdr.cluster import Cluster
    from pytest_k8sdr.journal import (
        OpenEntry,
        append_closed,
        read_journal,
        read_sessions,
        run_of,
    )
    from pytest_k8sdr.recover import Recoverer, describe, entries_from_cluster

    path: Path | None = None
    session: dict[str, object] = {}
    if args.cluster:
        entries = None
    else:
        path = args.journal or DEFAULT_JOURNAL
        entries = read_journal(path)
        sessions = read_sessions(path)
        runs = {run_of(e.id) for e in entries}
        # The newest run with open entries tells where the cluster is.
        for run in reversed(list(sessions)):
            if run in runs:
                session = sessions[run]
                break
        if not entries:
            print(f"k8sdr recover: nothing open in {path}")
            return 0
    kubeconfig = args.kubeconfig or _path(session.get("kubeconfig"))
    context = args.context or _text(session.get("context"))
    inventory = args.inventory or _path(session.get("machines"))
    cluster: Cluster | None = None
    needs_cluster = entries is None or any(
        e.record.kind not in ("machine", "lb-drain") for e in entries
    )
    if needs_cluster:
        cluster = Cluster.from_kubeconfig(kubeconfig, context, api_deadline=args.api_deadline)
    try:
        if entries is None:
            assert cluster is not None
            entries = entries_from_cluster(cluster)
            if not entries:
                print("k8sdr recover: no open disruption annotated on the cluster's nodes")
                return 0
        recoverer = Recoverer(cluster, inventory=inventory, rejoin_timeout=args.rejoin_timeout)
        if args.check:
            for entry in entries:
                print(describe(entry))
            print(f"k8sdr recover --check: {len(entries)} disruption(s) open; nothing touched")
            return 1
        recoverer.check(entries)
        journal = path

        def closed(entry: OpenEntry) -> None:
            if journal is not None:
                append_closed(journal, entry.id, "recovered")

        outcomes = recoverer.recover(entries, on_undone=closed)
        for outcome in outcomes:
            print(outcome.line())
        failed = [o for o in outcomes if o.status != "undone"]
        print(
            f"k8sdr recover: {len(outcomes) - len(failed)} of {len(outcomes)} disruption(s) "
            f"undone{'; run it again once the failures are fixed' if failed else ''}"
        )
        return 1 if failed else 0
    finally:
        if cluster is not None:
            cluster.close()


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


if __name__ == "__main__":
    raise SystemExit(main())
