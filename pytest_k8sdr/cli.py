"""The `k8sdr` command: `k8sdr sim`, `k8sdr recover` and `k8sdr report compare`.

`k8sdr sim ...` drives the simulated cluster, `k8sdr recover` cleans up after a killed run,
`k8sdr report compare` flags the phases a run was slower over than an earlier one.
"""

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
    sub.add_parser(
        "plan",
        help="dry run: k8sdr plan [pytest args] is pytest --k8sdr-plan [pytest args]",
        description="Rehearse the selected experiments on a simulated twin of the target "
        "cluster and print what they would do to it; the target is only read.",
    )
    rec = sub.add_parser(
        "recover",
        help="undo every disruption a killed run left open",
        description="Undo, newest first, every disruption still open in a journal file (or in "
        "the k8sdr.io/journal annotations of the cluster's Nodes), and stop a simulated cluster "
        "or managed nginx the run left running. Refuses while the run that made them is still "
        "alive (its pid on this host, or its game-day lock still renewed), naming it. "
        "Idempotent: run it again at will. Exit status: 0 when nothing is left open, 1 when "
        "something is, 2 for bad input, 3 when refused because the run is alive.",
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
    rec.add_argument(
        "--check",
        action="store_true",
        help="only report what is open and whether its run is alive; touch nothing",
    )
    rec.add_argument(
        "--force",
        action="store_true",
        help="undo the entries even of a run that is still alive (it then stops disrupting)",
    )
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
        help="seconds to keep retrying an API server that fails or is unreachable, and an undo "
        "that cannot be made yet (a machine still booting) (default: 30)",
    )
    rec.add_argument(
        "--rejoin-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for an isolated node to re-register (default: 120)",
    )
    report = sub.add_parser("report", help="read run reports (k8sdr report compare --help)")
    report_sub = report.add_subparsers(dest="report_command", metavar="REPORT_COMMAND")
    cmp = report_sub.add_parser(
        "compare",
        help="flag the phases a later run was slower over than an earlier one",
        description="Compare two runs' runbook phases, by test and phase name, and list each "
        "phase NEW took longer over than OLD by more than the threshold, flagged SLOWER. "
        "Exit status: 0 when no phase is slower, 1 when any is, 2 for bad input (a file that "
        "is missing or not a k8sdr summary, a negative threshold).",
    )
    cmp.add_argument(
        "old", type=Path, help="the earlier run: its report directory or its k8sdr-summary.json"
    )
    cmp.add_argument(
        "new", type=Path, help="the later run: its report directory or its k8sdr-summary.json"
    )
    cmp.add_argument(
        "--threshold",
        type=float,
        default=20.0,
        help="percent longer a phase must take to be flagged (default: 20)",
    )
    cmp.add_argument(
        "--min-seconds",
        type=float,
        default=0.5,
        help="seconds longer a phase must also take to be flagged, so that a short phase's "
        "noise is not (default: 0.5)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `k8sdr` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "sim":
        # The simulator has its own command set; it never imports the plugin.
        from pytest_k8sdr.sim.cli import main as sim_main

        return sim_main(args[1:])
    if args and args[0] == "plan" and args[1:2] not in (["-h"], ["--help"]):
        return _plan(args[1:])
    parser = _parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    if parsed.command == "recover":
        return _recover(parsed)
    if parsed.command == "report" and parsed.report_command == "compare":
        return _compare(parsed)
    parser.print_help()
    return 2


def _compare(args: argparse.Namespace) -> int:
    from pytest_k8sdr.report import SUMMARY_FILE
    from pytest_k8sdr.report_html import compare, load_summary, phase_times

    if args.threshold < 0 or args.min_seconds < 0:
        print(
            "k8sdr report compare: --threshold and --min-seconds cannot be negative",
            file=sys.stderr,
        )
        return 2
    summaries = []
    for given in (args.old, args.new):
        path = given / SUMMARY_FILE if given.is_dir() else given
        try:
            summaries.append(load_summary(path.read_text(), str(path)))
        except OSError as exc:
            print(f"k8sdr report compare: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"k8sdr report compare: {exc}", file=sys.stderr)
            return 2
    old, new = summaries
    slower = compare(old, new, tolerance=args.threshold / 100, min_seconds=args.min_seconds)
    for phase in slower:
        print(f"SLOWER  {phase.describe()}")
    common = phase_times(old).keys() & phase_times(new).keys()
    print(
        f"{len(slower)} of {len(common)} phases in both runs slower "
        f"(by more than {args.threshold:g}% and {args.min_seconds:g}s)"
    )
    return 1 if slower else 0


def _plan(pytest_args: list[str]) -> int:
    """`pytest --k8sdr-plan [pytest args]`, in this process: the plugin does the dry run."""
    import pytest

    return int(pytest.main(["--k8sdr-plan", *pytest_args]))


def _recover(args: argparse.Namespace) -> int:
    from pytest_k8sdr.errors import ConfigError, RecoverRefused, ToolError

    try:
        return _recover_checked(args)
    except RecoverRefused as exc:
        print(f"k8sdr recover: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"k8sdr recover: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"k8sdr recover: {exc}", file=sys.stderr)
        return 1


def _recover_checked(args: argparse.Namespace) -> int:
    from pytest_k8sdr.cluster import Cluster
    from pytest_k8sdr.errors import RecoverRefused
    from pytest_k8sdr.journal import OpenEntry, append_closed, read_journal, read_sessions
    from pytest_k8sdr.recover import Outcome, describe, entries_from_cluster, plan_runs

    clusters: dict[tuple[Path | None, str | None], Cluster] = {}

    def connect(kubeconfig: Path | None, context: str | None) -> Cluster:
        key = (kubeconfig, context)
        if key not in clusters:
            clusters[key] = Cluster.from_kubeconfig(
                kubeconfig, context, api_deadline=args.api_deadline
            )
        return clusters[key]

    path: Path | None = None
    sessions: dict[str, dict[str, object]] = {}
    try:
        if args.cluster:
            entries = entries_from_cluster(connect(args.kubeconfig, args.context))
            if not entries:
                print("k8sdr recover: no open disruption annotated on the cluster's nodes")
                return 0
        else:
            path = args.journal or DEFAULT_JOURNAL
            entries = read_journal(path)
            sessions = read_sessions(path)
            if not entries:
                print(f"k8sdr recover: nothing open in {path}")
                return 0
        runs = plan_runs(
            entries,
            sessions,
            connect,
            kubeconfig=args.kubeconfig,
            context=args.context,
            inventory=args.inventory,
            needs_cluster=args.cluster,
            rejoin_timeout=args.rejoin_timeout,
            retry_deadline=args.api_deadline,
        )
        if args.check:
            for run in runs:
                for entry in run.entries:
                    print(describe(entry))
                print(run.state.line())
                if run.state.alive:
                    print("  k8sdr recover refuses these entries while it runs (--force overrides)")
            print(f"k8sdr recover --check: {len(entries)} disruption(s) open; nothing touched")
            return 1
        alive = [run.state for run in runs if run.state.alive]
        if alive and not args.force:
            names = "; ".join(state.line() for state in alive)
            raise RecoverRefused(
                f"refusing to undo the entries of a run that is still alive: {names}. Let it "
                "end (it undoes its own disruptions), stop it (Ctrl-C, SIGTERM), or pass --force "
                "if it no longer acts on the cluster"
            )
        for run in runs:
            if run.state.alive is not False:
                print(f"k8sdr recover: note: {run.state.line()}")
        journal = path

        def closed(entry: OpenEntry, how: str) -> None:
            if journal is not None:
                append_closed(journal, entry.id, how)

        outcomes: list[Outcome] = []
        for run in runs:
            outcomes += run.recoverer.recover(run.entries, on_undone=closed)
        for outcome in outcomes:
            print(outcome.line())
        failed = [o for o in outcomes if o.status == "failed"]
        print(
            f"k8sdr recover: {len(outcomes) - len(failed)} of {len(outcomes)} disruption(s) "
            f"undone{'; run it again once the failures are fixed' if failed else ''}"
        )
        return 1 if failed else 0
    finally:
        for cluster in clusters.values():
            cluster.close()


if __name__ == "__main__":
    raise SystemExit(main())
