"""Phase figures in the JUnit XML, valid for the junit_family in force, with no warning."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

INNER = """
def test_worker_loss(runbook):
    with runbook.phase("fail", slo="30s"):
        pass
    with runbook.phase("self-heal"):
        pass
"""


def _run(pytester: pytest.Pytester, *family: str) -> ET.Element:
    pytester.makepyfile(test_inner=INNER)
    junit = pytester.path / "junit.xml"
    # -W error: a project that turns warnings into errors must not fail on ours.
    result = pytester.runpytest_subprocess("-W", "error", f"--junitxml={junit}", *family)
    result.assert_outcomes(passed=1)
    assert "record_property is incompatible" not in result.stdout.str()
    return ET.parse(junit).getroot()


@pytest.mark.parametrize("family", [(), ("-o", "junit_family=xunit2")])
def test_xunit2_gets_the_figures_as_testsuite_properties(
    pytester: pytest.Pytester, family: tuple[str, ...]
) -> None:
    root = _run(pytester, *family)
    # xunit2 allows no properties on a testcase.
    assert [case.find("properties") for case in root.iter("testcase")] == [None]
    suite = root.find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    prefix = "k8sdr.test_inner.py::test_worker_loss.phase"
    assert props[f"{prefix}.fail.slo_seconds"] == "30.000"
    assert props[f"{prefix}.fail.verdict"] == "ok"
    assert props[f"{prefix}.self-heal.verdict"] == "ok"
    assert float(props[f"{prefix}.self-heal.seconds"] or "nan") >= 0


@pytest.mark.parametrize("family", ["xunit1", "legacy"])
def test_xunit1_gets_the_figures_on_the_testcase(pytester: pytest.Pytester, family: str) -> None:
    root = _run(pytester, "-o", f"junit_family={family}")
    (case,) = root.iter("testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["k8sdr.phase.fail.verdict"] == "ok"
    assert props["k8sdr.phase.fail.slo_seconds"] == "30.000"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.find("properties") is None
