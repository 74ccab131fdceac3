"""Every setting is checked at start: a bad value is one usage error, and nothing is launched."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdr.config import OPTIONS

# A test that would launch the simulated cluster, reach it and disrupt a node.
INNER = """
import pytest

@pytest.mark.disruptive
def test_a(cluster, machines):
    pass

@pytest.mark.disruptive
def test_b(cluster, machines):
    pass
"""

MALFORMED_KUBECONFIG = "contexts: {this: is not a list}\n"
GOOD_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: staging, context: {cluster: c, user: u}}]
current-context: staging
"""

BAD_KIND_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes: [{role: control-plane}, {role: master}]
"""

# option -> (command-line arguments, what the single error must say). `{tmp}` is the test's
# directory, which holds `file` (a regular file), `dir/` (a directory), `bad.yaml` (a malformed
# kubeconfig), `good.yaml` (a kubeconfig) and `inventory.yaml` (a malformed inventory).
BAD: dict[str, tuple[list[str], str]] = {
    "backend": (["--k8sdr-backend=docker"], "invalid value 'docker' for backend"),
    "kubeconfig": (
        ["--k8sdr-backend=kubeconfig", "--k8sdr-kubeconfig={tmp}/bad.yaml"],
        "is malformed",
    ),
    "context": (
        ["--k8sdr-backend=kubeconfig", "--k8sdr-kubeconfig={tmp}/good.yaml", "--k8sdr-context=x"],
        "kubeconfig context 'x' does not exist (available: staging)",
    ),
    "allowed_contexts": (
        ["--k8sdr-backend=kubeconfig", "--k8sdr-kubeconfig={tmp}/good.yaml"],
        "not on the allowlist",
    ),
    "kind_cluster": (["--k8sdr-kind-cluster=Bad_Name"], "for kind_cluster"),
    "namespace": (["--k8sdr-namespace=Not_A_Name"], "for namespace (--k8sdr-namespace"),
    "profile": (["--k8sdr-profile=slow"], "invalid value 'slow' for profile"),
    "report_dir": (["--k8sdr-report-dir={tmp}/file"], "exists and is not a directory"),
    "slos": (["--k8sdr-slos=fail=abc"], "invalid value 'fail=abc' for slos (--k8sdr-slos)"),
    "machines": (["--k8sdr-machines=/nope.yaml"], "machines (--k8sdr-machines"),
    "sim_config": (
        ["--k8sdr-sim-config={tmp}/kind.yaml"],
        "sim_config (--k8sdr-sim-config / K8SDR_SIM_CONFIG / ini k8sdr_sim_config): kind config "
        "{tmp}/kind.yaml: nodes[1].role: expected one of control-plane, worker, got 'master'",
    ),
    "lb": (["--k8sdr-lb=f5"], "invalid value 'f5' for lb"),
    "lb_config": (
        [
            "--k8sdr-lb=nginx",
            "--k8sdr-lb-url=http://127.0.0.1:1/",
            "--k8sdr-lb-upstream=web",
            "--k8sdr-lb-config={tmp}/nginx.conf",
        ],
        "no such file",
    ),
    "lb_upstream": (
        ["--k8sdr-lb=nginx", "--k8sdr-lb-url=http://127.0.0.1:1/"],
        "--k8sdr-lb=nginx needs lb_upstream",
    ),
    "lb_url": (["--k8sdr-lb-url=127.0.0.1:8080"], "expected an http:// or https:// URL"),
    "lb_container": (["--k8sdr-lb-container=no spaces"], "not a Docker container name"),
    "lb_socket": (
        [
            "--k8sdr-lb=haproxy",
            "--k8sdr-lb-url=http://127.0.0.1:1/",
            "--k8sdr-lb-upstream=web",
            "--k8sdr-lb-socket={tmp}/admin.sock",
        ],
        "no such socket",
    ),
    "journal": (["--k8sdr-journal={tmp}/dir"], "is a directory, not a journal file"),
    "protected_nodes": (["--k8sdr-protected-nodes=tier=(db"], "is not a label selector term"),
    "max_disrupted": (["--k8sdr-max-disrupted=0"], "expected a positive integer"),
    "require_healthy": (["--k8sdr-require-healthy=maybe"], "for require_healthy"),
    "lock": (["--k8sdr-lock=yes"], "invalid value 'yes' for lock"),
    "recorder": (["--k8sdr-recorder=maybe"], "invalid value 'maybe' for recorder"),
    "lock_namespace": (["--k8sdr-lock-namespace=Bad_NS"], "for lock_namespace"),
    "lock_duration": (["--k8sdr-lock-duration=-5"], "expected a positive integer"),
    "prometheus": (["--k8sdr-prometheus=127.0.0.1:9090"], "for prometheus (--k8sdr-prometheus"),
    "steady_state": (
        ["--k8sdr-steady-state=sum(up)"],
        "invalid value 'sum(up)' for steady_state (--k8sdr-steady-state)",
    ),
    "steady_state_interval": (
        ["--k8sdr-steady-state-interval=often"],
        "invalid value 'often' for steady_state_interval",
    ),
    "steady_state_recovery": (
        ["--k8sdr-steady-state-recovery=-1s"],
        "invalid value '-1s' for steady_state_recovery",
    ),
}
# Free text, where no value is wrong in itself: who the lock names as its holder.
ANY_VALUE = {"lock_holder"}


def test_every_setting_has_a_bad_value_here() -> None:
    assert set(BAD) | ANY_VALUE == {o.name for o in OPTIONS}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("K8SDR_"):
            monkeypatch.delenv(name)


def _files(tmp: Path) -> None:
    (tmp / "file").write_text("x")
    (tmp / "dir").mkdir()
    (tmp / "bad.yaml").write_text(MALFORMED_KUBECONFIG)
    (tmp / "good.yaml").write_text(GOOD_KUBECONFIG)
    (tmp / "kind.yaml").write_text(BAD_KIND_CONFIG)


@pytest.mark.parametrize("option", sorted(BAD))
def test_a_bad_value_is_one_usage_error_before_anything_is_launched(
    pytester: pytest.Pytester, option: str
) -> None:
    tmp = pytester.path
    _files(tmp)
    pytester.makepyfile(test_inner=INNER)
    args, message = BAD[option]
    result = pytester.runpytest(*(a.replace("{tmp}", str(tmp)) for a in args))
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    assert message.replace("{tmp}", str(tmp)) in errors[0]
    # No test ran and no backend was started: its session fixture would have made this.
    assert not list((tmp / "basetemp").glob("k8sdr*"))
    assert "passed" not in result.stdout.str()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"K8SDR_PROMETHEUS_USERNAME": "ops"}, "K8SDR_PROMETHEUS_USERNAME is set without"),
        (
            {"K8SDR_PROMETHEUS_TOKEN": "s3cret", "K8SDR_PROMETHEUS_PASSWORD": "s3cret"},
            "Prometheus takes a bearer token or basic auth, not both",
        ),
    ],
)
def test_prometheus_credentials_from_the_environment_are_checked_at_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("--k8sdr-prometheus=http://127.0.0.1:1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    assert message in errors[0]
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
    assert not list((pytester.path / "basetemp").glob("k8sdr*"))


def test_a_steady_state_without_prometheus_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(
        "--k8sdr-prometheus=none", "--k8sdr-steady-state=errors: sum(x) < 1"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *steady_state*is set but prometheus*is none*"])


# An inventory (its YAML) -> what the single error must say. Beyond a malformed file, problems a
# run (or a dry run rehearsing it) would otherwise meet only at its first fault.
BAD_INVENTORY = {
    "malformed": ("nodes: [not, a, mapping]\n", "nodes: expected a mapping"),
    "command driver, no nodes": (
        "defaults: {driver: command, commands: {kill: 'ipmitool power off {node}'}}\n",
        "nodes: the command driver needs an entry per node, and `nodes:` lists none",
    ),
    "ssh driver, no nodes": (
        "defaults: {driver: ssh, user: ops}\n",
        "nodes: the ssh driver needs an entry per node",
    ),
    "control plane, no start": (
        "control_plane: {stop: 'systemctl stop kube-apiserver'}\n",
        "control_plane.start: required, missing",
    ),
    "control plane, a node placeholder": (
        "control_plane: {stop: 'ssh {node} systemctl stop kube-apiserver', start: 'true'}\n",
        "control_plane.stop: unknown placeholder",
    ),
}


@pytest.mark.parametrize("plan", [False, True], ids=["run", "plan"])
@pytest.mark.parametrize("problem", sorted(BAD_INVENTORY))
def test_a_bad_inventory_is_one_usage_error_naming_the_file(
    pytester: pytest.Pytester, problem: str, plan: bool
) -> None:
    text, message = BAD_INVENTORY[problem]
    inventory = pytester.path / "inventory.yaml"
    inventory.write_text(text)
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(f"--k8sdr-machines={inventory}", *(["--k8sdr-plan"] * plan))
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    assert f"machine inventory {inventory}: " in errors[0]
    assert message in errors[0]
    # Nothing was launched (a dry run's twin included) and no test ran.
    assert not list((pytester.path / "basetemp").glob("k8sdr*"))
    assert "passed" not in result.stdout.str()


def test_the_kind_backend_without_its_extra_is_one_usage_error(
    pytester: pytest.Pytester,
) -> None:
    try:
        import pytest_kind  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.fail("this test needs a venv without pytest-kind-ng (the dev extras have none)")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("--k8sdr-backend=kind")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: --k8sdr-backend=kind needs pytest-kind-ng, which is not installed: "
        "pip install 'pytest-k8sdr[kind]'"
    ]


def test_a_marker_with_a_bad_value_stops_the_run_at_collection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_inner="""
import pytest

@pytest.mark.k8sdr(slos="self-heal=soon")
def test_a(cluster):
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_a*invalid value 'self-heal=soon' for slos*"])
    assert not list((pytester.path / "basetemp").glob("k8sdr*"))


def test_sim_config_gives_the_session_cluster_the_files_nodes(pytester: pytest.Pytester) -> None:
    config = pytester.path / "kind.yaml"
    config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: shaped\n"
        "nodes:\n  - role: control-plane\n"
        "  - {role: worker, labels: {topology.kubernetes.io/zone: a}}\n"
        "  - {role: worker, labels: {topology.kubernetes.io/zone: b}}\n"
    )
    # The file replaces the shape a conftest gives (as experiments/conftest.py does).
    pytester.makeconftest(
        """
import pytest

@pytest.fixture(scope="session")
def k8sdr_sim_options():
    return {"workers": 2, "zones": ["x", "x", "y"]}
"""
    )
    pytester.makepyfile(
        test_inner="""
def test_nodes(cluster):
    zones = {n.name: n.labels.get("topology.kubernetes.io/zone") for n in cluster.nodes()}
    assert zones == {"shaped-control-plane": None, "shaped-worker": "a", "shaped-worker2": "b"}
"""
    )
    result = pytester.runpytest_subprocess(f"--k8sdr-sim-config={config}", timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
