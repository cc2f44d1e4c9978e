"""Tests of the project's own files: pinned environments agree, the entry points exist, CI runs `make test`."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")  # name==exact.version


def _requirement_lines(name: str = "requirements.txt") -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", ["requirements-serve.txt", "requirements-dev.txt"])
def test_optional_requirements_are_exact_pins_that_agree_with_the_main_ones(name):
    lines = _requirement_lines(name)
    pin = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[a-z,]+\])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")  # extras allowed
    assert lines and [line for line in lines if not pin.match(line)] == []
    main = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in _requirement_lines()}
    for line in lines:
        package, version = line.split("==")
        package = re.sub(r"\[.*\]", "", package).lower().replace("_", "-")
        assert main.get(package, version) == version, f"{name} pins {line} but requirements.txt pins {main[package]}"
    assert "torch" not in {re.sub(r"\[.*\]", "", l.split("==")[0]).lower() for l in lines}  # never a second torch


def test_requirements_are_exact_pins_including_torch():
    lines = _requirement_lines()
    assert lines, "requirements.txt is empty"
    loose = [line for line in lines if not PIN.match(line)]
    assert loose == [], f"every line of requirements.txt must be an exact name==version pin, not {loose}"
    assert "torch==2.13.0" in lines
    names = [line.split("==")[0].lower().replace("_", "-") for line in lines]
    assert len(names) == len(set(names)), "a package is pinned twice"


def test_environment_yml_matches_requirements():
    yaml = pytest.importorskip("yaml")
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    dependencies = environment["dependencies"]
    conda = [item for item in dependencies if isinstance(item, str)]
    assert any(re.fullmatch(r"python\s*=+\s*3\.11(\.\*)?", item) for item in conda), conda
    pip_lists = [item["pip"] for item in dependencies if isinstance(item, dict) and "pip" in item]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    pins = [item for item in pip_lists[0] if "==" in item]
    others = [item for item in pip_lists[0] if "==" not in item]
    assert sorted(pins) == sorted(_requirement_lines())
    assert others == ["-e ."], f"only the course itself may be unpinned in environment.yml, not {others}"


def test_pyproject_declares_the_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["slm-course"] == "slm_course.cli:main"


def test_ci_runs_make_test():
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert "make test" in commands


def test_readme_quick_start_has_make_lab_and_make_test():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^#+\s*Quick start\s*$(.*?)(?=^#+\s|\Z)", readme, re.MULTILINE | re.DOTALL | re.IGNORECASE)
    assert match, "README.md needs a 'Quick start' section"
    section = match.group(1)
    assert "make lab" in section and "make test" in section
