"""ci/github-actions.yml: valid for GitHub, and doing what the kind CI job must do.

The workflow is checked against a JSON schema derived from SchemaStore's github-workflow.json
(tests/ci/schemas/github-workflow.json), every shell step is parsed by `bash -n`, and the steps
are checked for what matters: the kind config, the experiments on kind, the reports uploaded and
the cluster deleted whatever happened.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_k8sdr.backends import kind_config
from pytest_k8sdr.sim.profiles import FAST

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "ci" / "github-actions.yml"
SCHEMA = Path(__file__).parent / "schemas" / "github-workflow.json"


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans only, as GitHub reads workflows: `on` is a key, not True."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load(text: str) -> dict[str, Any]:
    doc = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(loaded)
    return loaded


@pytest.fixture(scope="module")
def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = workflow["jobs"]
    assert list(jobs) == ["experiments"]
    result: list[dict[str, Any]] = jobs["experiments"]["steps"]
    return result


def step_named(steps: list[dict[str, Any]], words: str) -> dict[str, Any]:
    found = [s for s in steps if words in s.get("name", "")]
    assert len(found) == 1, f"want one step named like {words!r}, got {len(found)}"
    return found[0]


def test_valid_against_the_workflow_schema(
    workflow: dict[str, Any], schema: dict[str, Any]
) -> None:
    jsonschema.validate(workflow, schema, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize(
    "change",
    [
        lambda w: w["jobs"]["experiments"]["steps"][0].update(run="true"),  # uses and run
        lambda w: w["jobs"]["experiments"].update({"runs_on": "x"}),  # unknown key
        lambda w: w["jobs"]["experiments"]["steps"].append({"shell": "bash"}),  # nothing to do
        lambda w: w.pop("on"),
    ],
)
def test_the_schema_rejects_broken_workflows(
    workflow: dict[str, Any], schema: dict[str, Any], change: Any
) -> None:
    broken = copy.deepcopy(workflow)
    change(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft7Validator)


def test_every_repository_file_it_names_exists(steps: list[dict[str, Any]]) -> None:
    named = set()
    for step in steps:
        named |= set(re.findall(r"\bci/[\w./-]+\.(?:py|yaml|yml|sh)\b", step.get("run", "")))
    assert named >= {"ci/kind-config.yaml", "ci/kind/lb.py"}
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing


def test_the_cluster_is_created_from_the_plugins_kind_config(steps: list[dict[str, Any]]) -> None:
    create = step_named(steps, "Create the kind cluster")["run"]
    assert re.search(r"kind create cluster .*--config ci/kind-config\.yaml", create)
    with kind_config() as shipped:
        assert shipped.resolve() == (ROOT / "ci" / "kind-config.yaml").resolve()


def test_experiments_run_on_kind_with_junit_and_allure(steps: list[dict[str, Any]]) -> None:
    run = step_named(steps, "pytest experiments/")["run"]
    assert re.search(r"pytest experiments/(\s|$)", run)
    assert "--k8sdr-backend=kind" in run
    assert "--junitxml=reports/" in run
    assert "--alluredir=reports/" in run


def test_order_lb_before_pytest_and_cleanup_last(steps: list[dict[str, Any]]) -> None:
    names = [s.get("name", s.get("uses", "")) for s in steps]
    create = names.index(step_named(steps, "Create the kind cluster")["name"])
    lb = names.index(step_named(steps, "load balancer (ci/kind/lb.py)")["name"])
    tests = names.index(step_named(steps, "pytest experiments/")["name"])
    assert create < lb < tests
    assert "lb.py up" in steps[lb]["run"]


def test_results_are_uploaded_and_the_cluster_deleted_always(
    steps: list[dict[str, Any]],
) -> None:
    upload = step_named(steps, "Upload")
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    delete = steps[-1]
    assert delete["if"] == "always()"
    assert 'kind delete cluster --name "$CLUSTER"' in delete["run"]
    assert "lb.py down" in delete["run"]


def test_downloads_are_checksummed(steps: list[dict[str, Any]]) -> None:
    install = step_named(steps, "Install kind and kubectl")["run"]
    assert install.count("curl -fsSLo ") == 2
    assert install.count("sha256sum -c -") == 2


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_every_shell_step_parses(steps: list[dict[str, Any]]) -> None:
    for step in steps:
        if "run" not in step:
            continue
        # GitHub substitutes ${{ ... }} before bash sees the script.
        script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
        done = subprocess.run(
            ["bash", "-n"], input=script, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"step {step.get('name')!r}: {done.stderr}"


def test_the_job_checks_the_timings_reached_the_cluster(steps: list[dict[str, Any]]) -> None:
    check = step_named(steps, "fast timings are in force")["run"]
    assert "node-(monitor|startup|eviction)" in check
    assert "toleration-seconds" in check
    lease = re.search(r'c\["nodeLeaseDurationSeconds"\] == (\d+)', check)
    assert lease is not None
    assert float(lease.group(1)) == FAST.node_lease_duration
