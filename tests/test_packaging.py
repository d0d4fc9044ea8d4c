"""Packaging: the library declares version ranges, so it installs beside a user's own torch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # the standard library's from Python 3.11

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    return project["dependencies"] + extras


def test_no_dependency_is_pinned_to_one_version():
    pinned = [r for r in _requirements() if re.search(r"===?|~=", r)]
    assert pinned == [], f"pins belong in the install commands, not the package: {pinned}"


def test_torch_is_a_lower_bound_that_admits_the_tested_and_older_versions():
    torch_req = next(r for r in _requirements() if re.match(r"torch\b", r))
    bound = re.fullmatch(r"torch>=(\d+)\.(\d+)", torch_req.replace(" ", ""))
    assert bound, torch_req
    assert (int(bound[1]), int(bound[2])) <= (2, 13)


def test_install_commands_pin_the_cpu_wheel():
    readme = (ROOT / "README.md").read_text().splitlines()[:8]
    commands = [line for line in readme if line.startswith("pip install")]
    assert len(commands) == 2
    assert all("'torch==2.13.0'" in c for c in commands)
    assert "python -m pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci
