"""A simulated cluster that cannot start is a clear usage error, never a raw traceback."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def k8sdr_sim_options():
    # Far too short for any API server to answer: the launch fails with SimLaunchError.
    return {"workers": 1, "ready_timeout": 0.001}
"""

TEST = """
def test_uses_the_cluster(cluster):
    raise AssertionError("the cluster fixture should not have been set up")
"""


def test_sim_launch_failure_is_reported_as_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert "the simulated cluster did not start" in output, output
    assert "did not come up in time" in output, output
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the cluster fixture should not have been set up" not in output
    # No traceback: the simulator's error is translated once, at the plugin's boundary.
    assert "Traceback" not in output, output
    assert "sim/launcher.py" not in output, output
