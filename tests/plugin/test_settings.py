"""Settings through pytester: precedence, invalid values, and the context allowlist."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

SHOW = """
import json

def test_show(k8sdr_settings):
    print("SETTINGS=" + json.dumps({
        "backend": k8sdr_settings.backend,
        "profile": k8sdr_settings.profile,
        "namespace": k8sdr_settings.namespace,
        "allowed": list(k8sdr_settings.allowed_contexts),
        "sources": dict(k8sdr_settings.sources),
    }))
"""


def shown(result: pytest.RunResult) -> dict[str, object]:
    import json

    for line in result.outlines:
        if "SETTINGS=" in line:
            return dict(json.loads(line.split("SETTINGS=", 1)[1]))
    raise AssertionError("the test did not print its settings:\n" + result.stdout.str())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("K8SDR_"):
            monkeypatch.delenv(name)


def test_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    got = shown(result)
    assert got["backend"] == "sim"
    assert got["profile"] == "fast"
    assert got["namespace"] is None
    from pytest_k8sdr.config import OPTIONS

    assert got["sources"] == {o.name: "default" for o in OPTIONS}


@pytest.mark.parametrize(
    ("layers", "expected", "source"),
    [
        (("ini",), "from-ini", "ini"),
        (("ini", "env"), "from-env", "env"),
        (("ini", "env", "cli"), "from-cli", "cli"),
        (("ini", "env", "cli", "marker"), "from-marker", "marker"),
        (("env", "marker"), "from-marker", "marker"),
        (("ini", "cli"), "from-cli", "cli"),
    ],
)
def test_precedence_ini_env_cli_marker(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    layers: tuple[str, ...],
    expected: str,
    source: str,
) -> None:
    if "ini" in layers:
        pytester.makeini("[pytest]\nk8sdr_namespace = from-ini\n")
    if "env" in layers:
        monkeypatch.setenv("K8SDR_NAMESPACE", "from-env")
    args = ["-s"]
    if "cli" in layers:
        args.append("--k8sdr-namespace=from-cli")
    code = SHOW
    if "marker" in layers:
        code = "import pytest\npytestmark = pytest.mark.k8sdr(namespace='from-marker')\n" + SHOW
    pytester.makepyfile(code)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    got = shown(result)
    assert got["namespace"] == expected
    assert got["sources"]["namespace"] == source  # type: ignore[index]


def test_function_marker_overrides_module_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.k8sdr(namespace="module")

        @pytest.mark.k8sdr(namespace="function")
        def test_it(k8sdr_settings):
            assert k8sdr_settings.namespace == "function"

        def test_other(k8sdr_settings):
            assert k8sdr_settings.namespace == "module"
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("how", "option", "value", "accepted"),
    [
        ("cli", "backend", "minikube", "sim, kind, kubeconfig"),
        ("env", "backend", "k3d", "sim, kind, kubeconfig"),
        ("ini", "backend", "docker", "sim, kind, kubeconfig"),
        ("cli", "profile", "slow", "fast, upstream"),
        ("env", "profile", "turbo", "fast, upstream"),
        ("ini", "profile", "FAST", "fast, upstream"),
    ],
)
def test_invalid_values_are_usage_errors_naming_option_and_choices(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    option: str,
    value: str,
    accepted: str,
) -> None:
    pytester.makepyfile(SHOW)
    args: list[str] = []
    if how == "cli":
        args.append(f"--k8sdr-{option}={value}")
    elif how == "env":
        monkeypatch.setenv(f"K8SDR_{option.upper()}", value)
    else:
        pytester.makeini(f"[pytest]\nk8sdr_{option} = {value}\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*invalid value '{value}' for {option}*accepted values: {accepted}*"]
    )
    assert "test_show" not in result.stdout.str()


def test_invalid_marker_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.k8sdr(profile="slow")
        def test_it():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_it*invalid value 'slow' for profile*fast, upstream*"])


def test_unknown_marker_keyword_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.k8sdr(namepsace="typo")
        def test_it():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown k8sdr marker keyword(s) namepsace; accepted: backend*"])


def test_markers_are_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.disruptive
        @pytest.mark.k8sdr(namespace="x")
        def test_it():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_session_wide_marker_mismatch_skips_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.k8sdr(backend="kind")
        def test_kind_only():
            pass

        @pytest.mark.k8sdr(backend="sim")
        def test_sim_too():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs backend=kind; this session runs backend=sim*"])


def write_kubeconfig(path: Path, current: str = "staging", body: str | None = None) -> Path:
    path.write_text(
        body
        if body is not None
        else textwrap.dedent(
            f"""
            apiVersion: v1
            kind: Config
            current-context: {current}
            clusters:
            - name: c
              cluster: {{server: "https://127.0.0.1:1"}}
            users:
            - name: u
              user: {{token: "not-a-real-token"}}
            contexts:
            - name: staging
              context: {{cluster: c, user: u}}
            - name: production
              context: {{cluster: c, user: u}}
            """
        )
    )
    return path


DISRUPTIVE = """
import pytest

@pytest.mark.disruptive
def test_kill_a_node():
    print("TOUCHED THE CLUSTER")

def test_read_only():
    pass
"""


def test_disruptive_test_on_context_not_allowed_is_refused_before_running(
    pytester: pytest.Pytester,
) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", current="production")
    pytester.makepyfile(DISRUPTIVE)
    result = pytester.runpytest(
        "-s",
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        "--k8sdr-allowed-contexts=staging",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*refusing to run 1 disruptive test(s)*test_kill_a_node*"
            "context 'production': it is not on the allowlist (staging)*"
            "--k8sdr-allowed-contexts=production*"
        ]
    )
    assert "TOUCHED THE CLUSTER" not in result.stdout.str()


def test_disruptive_test_on_allowed_context_is_collected(pytester: pytest.Pytester) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", current="production")
    pytester.makepyfile(DISRUPTIVE)
    result = pytester.runpytest(
        "-s",
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        "--k8sdr-context=staging",
        "--k8sdr-allowed-contexts=staging,qa",
    )
    result.assert_outcomes(passed=2)
    assert "TOUCHED THE CLUSTER" in result.stdout.str()


def test_marker_may_narrow_but_not_widen_the_allowlist(pytester: pytest.Pytester) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", current="staging")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.disruptive
        @pytest.mark.k8sdr(allowed_contexts="production")
        def test_widening_attempt():
            pass
        """
    )
    result = pytester.runpytest(
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        "--k8sdr-allowed-contexts=staging",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*refusing to run 1 disruptive test(s)*test_widening_attempt*"])


def test_env_allowlist_and_kubeconfig_env(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", current="staging")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("K8SDR_BACKEND", "kubeconfig")
    monkeypatch.setenv("K8SDR_ALLOWED_CONTEXTS", "staging")
    pytester.makepyfile(DISRUPTIVE)
    pytester.runpytest().assert_outcomes(passed=2)


def test_unknown_context_is_a_clear_error(pytester: pytest.Pytester) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig")
    pytester.makepyfile(DISRUPTIVE)
    result = pytester.runpytest(
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        "--k8sdr-context=stagign",
        "--k8sdr-allowed-contexts=stagign",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*kubeconfig context 'stagign' does not exist (available: production, staging)*"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("contexts: [unclosed", "*kubeconfig*cannot be read*"),
        (
            "- just\n- a list\n",
            "*kubeconfig*is malformed: expected a mapping with a 'contexts' list*",
        ),
        ("contexts:\n- context: {}\n", "*kubeconfig*is malformed: a context without a name*"),
    ],
)
def test_malformed_kubeconfig_is_a_clear_error(
    pytester: pytest.Pytester, body: str, message: str
) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", body=body)
    pytester.makepyfile(DISRUPTIVE)
    result = pytester.runpytest("--k8sdr-backend=kubeconfig", f"--k8sdr-kubeconfig={kubeconfig}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_missing_kubeconfig_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(DISRUPTIVE)
    result = pytester.runpytest(
        "--k8sdr-backend=kubeconfig", f"--k8sdr-kubeconfig={pytester.path / 'nope'}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no kubeconfig found (looked at *nope)*"])


def test_read_only_tests_need_no_allowlist(pytester: pytest.Pytester) -> None:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", current="production")
    pytester.makepyfile("def test_read_only():\n    pass\n")
    result = pytester.runpytest("--k8sdr-backend=kubeconfig", f"--k8sdr-kubeconfig={kubeconfig}")
    result.assert_outcomes(passed=1)


def test_header_shows_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest("--k8sdr-profile=upstream")
    result.stdout.fnmatch_lines(["k8sdr: backend=sim *profile=upstream*"])
