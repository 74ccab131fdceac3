"""The README stays true: every setting is documented, the set-up commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pytest_k8sdr
from pytest_k8sdr.config import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_settings_table() -> None:
    for option in OPTIONS:
        row = f"| {option.name} | `{option.cli_flag}` | `{option.env_var}` | `{option.ini_key}` |"
        assert row in README, f"README's settings table lacks {option.name}"


def test_the_two_setup_commands_are_what_ci_runs() -> None:
    commands = re.findall(r"^(bash ci/setup && \.venv/bin/pytest.*)$", README, re.MULTILINE)
    assert "bash ci/setup && .venv/bin/pytest experiments/" in commands
    assert "bash ci/setup && .venv/bin/pytest -n 2" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash ci/setup" in ci
    assert ".venv/bin/pytest -p no:cacheprovider -n 2\n" in ci
    assert ".venv/bin/pytest -p no:cacheprovider experiments/" in ci


def _section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_fixture_table_lists_exactly_the_plugins_fixtures(pytester: pytest.Pytester) -> None:
    # What pytest itself lists as the plugin's fixtures (private ones are hidden without -v).
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    listed: set[str] = set()
    ours = False
    for line in result.outlines:
        if line.startswith(("-", "=")):
            ours = "fixtures defined from pytest_k8sdr." in line
        elif ours and line and not line.startswith(" "):
            listed.add(line.split()[0])
    table = set(re.findall(r"^\| `(\w+)` \|", _section("Fixtures"), re.MULTILINE))
    assert "make_pdb" in listed
    assert table == listed


def test_the_public_api_section_names_exactly_what_all_exports() -> None:
    named = set(re.findall(r"`(\w+)", _section("The public API")))
    public = set(pytest_k8sdr.__all__) - {"__version__"}
    assert public - named == set(), "exported but not in the README"
    # And what it names as API is exported (the client's ApiException is named as the cause).
    api = {n for n in named if n[0].isupper() or n.startswith(("assert_", "pod_"))}
    assert api - public == {"ApiException"}


def test_the_example_experiment_is_the_real_one() -> None:
    section = README.split("## What an experiment looks like", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    experiment = (ROOT / "experiments" / "test_node_failure.py").read_text()
    assert example.strip() in experiment


def test_docs_a_user_reads_name_only_files_the_project_ships() -> None:
    # A user of the package has the repository or the wheel, not the team's shared/ folder.
    shipped = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("ci/*.yaml")]
    shipped += list((ROOT / "pytest_k8sdr").rglob("*.py"))
    shipped += list((ROOT / "pytest_k8sdr").rglob("*.md"))
    shipped += list((ROOT / "pytest_k8sdr").rglob("*.yaml"))
    for path in shipped:
        text = path.read_text()
        assert "shared/reference" not in text, f"{path.relative_to(ROOT)} cites shared/reference"
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / link).is_file(), f"README links to a missing {link}"


def test_the_node_failure_semantics_cite_upstream_sources() -> None:
    doc = (ROOT / "docs" / "node-failure-semantics.md").read_text()
    for source in (
        "pkg/controller/nodelifecycle/node_lifecycle_controller.go",
        "pkg/controller/tainteviction/taint_eviction.go",
        "pkg/controller/podgc/gc_controller.go",
        "plugin/pkg/admission/defaulttolerationseconds/admission.go",
        "pkg/registry/core/pod/storage/eviction.go",
    ):
        assert source in doc, source
    assert "docs/node-failure-semantics.md" in README


def test_troubleshooting_quotes_what_the_code_prints() -> None:
    # Each bold code span is a message's start as printed; "..." stands for what varies.
    section = README.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    quoted = re.findall(r"\*\*`([^`]+)`", section.replace("\n", " "))
    assert len(quoted) >= 10
    source = "\n".join(p.read_text() for p in (ROOT / "pytest_k8sdr").rglob("*.py"))
    for quote in quoted:
        fragments = [f.strip(" .") for f in quote.split("...")]
        for fragment in (f for f in fragments if len(f) >= 6):
            assert fragment in source, f"README Troubleshooting quotes {quote!r}: not in the code"
