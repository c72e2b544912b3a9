"""Every module compiles with warnings as errors, and the Python the package claims is the one
its code needs: Python 3.12 turned a stray '\\[' in a docstring into a SyntaxWarning at import."""

from __future__ import annotations

import re
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for top in ("improvd", "training", "models", "scripts", "tests") for p in (REPO / top).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SyntaxWarning / DeprecationWarning become SyntaxError
        compile(path.read_text(), str(path), "exec")


def test_requires_python_is_what_the_code_needs_and_ci_runs():
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = tuple(int(x) for x in re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups())
    uses_tomllib = any("import tomllib" in p.read_text() for p in (REPO / "improvd").rglob("*.py"))
    assert not uses_tomllib or floor >= (3, 11), f"requires-python {spec}, but improvd imports tomllib (3.11+)"
    assert sys.version_info[:2] >= floor  # the interpreter running the tests is one the package claims
    # Claim only what is tested: the floor is the Python CI runs on (Debian 12's python3).
    assert floor == (3, 11), f"requires-python {spec}: CI runs 3.11; test the lower version before claiming it"
