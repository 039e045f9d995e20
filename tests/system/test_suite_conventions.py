"""The suite keeps its own rules: every test says, in its docstring, what it proves.

Tests are found as pytest collects them, read with ``ast`` (nothing is
imported): top-level ``test*`` functions and the ``test*`` methods of
``Test*`` classes, in every ``test_*.py`` under tests/.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from support import REPO

TESTS = REPO / "tests"

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _tests_in(
    body: list[ast.stmt], prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The test functions of a module's (or a ``Test*`` class's) body, with qualified names."""
    for node in body:
        if isinstance(node, _FUNCTIONS) and node.name.startswith("test"):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            yield from _tests_in(node.body, f"{prefix}{node.name}.")


def undocumented(source: str, where: str) -> list[str]:
    """``where:line name`` of each test in ``source`` without a docstring (or a blank one)."""
    found = []
    for name, node in _tests_in(ast.parse(source).body):
        if not (ast.get_docstring(node) or "").strip():
            found.append(f"{where}:{node.lineno} {name}")
    return found


def test_every_test_has_a_docstring() -> None:
    """Every test function and Test* class method under tests/ has a non-blank docstring;
    the failure lists those that have none, by file, line and name."""
    modules = sorted(TESTS.rglob("test_*.py"))
    assert Path(__file__).resolve() in modules  # the walk reaches the suite's modules
    missing = [
        name
        for module in modules
        for name in undocumented(
            module.read_text(encoding="utf-8"), module.relative_to(REPO).as_posix()
        )
    ]
    assert [] == missing, "tests with no docstring saying what they prove:\n" + "\n".join(missing)


def test_the_check_finds_functions_methods_and_blank_docstrings() -> None:
    """The finder reports a bare test function, an async one, a Test* class method and a blank
    docstring, and passes over helpers, documented tests and methods of other classes."""
    source = '''
def helper():
    pass

def test_bare():
    pass

async def test_async():
    pass

def test_blank():
    """ """

def test_documented():
    """Proves something."""

class TestGroup:
    def setup_method(self):
        pass

    def test_method(self):
        assert True

    class TestInner:
        def test_nested(self):
            pass

class Helper:
    def test_not_collected(self):
        pass
'''
    assert [
        "m.py:5 test_bare",
        "m.py:8 test_async",
        "m.py:11 test_blank",
        "m.py:21 TestGroup.test_method",
        "m.py:25 TestGroup.TestInner.test_nested",
    ] == undocumented(source, "m.py")


def _mutate_tool() -> ModuleType:
    """tools/mutate.py, loaded from its file (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("mutate_tool", REPO / "tools" / "mutate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_listed_equivalent_mutant_is_one_the_mutator_still_makes() -> None:
    """tests/mutation-equivalents.txt names only mutants of the current code, each with a
    reason: an entry whose line moved would silently let a new survivor be skipped."""
    tool = _mutate_tool()
    equivalents = tool.read_equivalents()
    made = {m.key for path in {key[0] for key in equivalents} for m in tool.mutants_of(path)}
    stale = sorted(f"{p}:{line}:{col} | {what}" for p, line, col, what in equivalents.keys() - made)
    assert ([], []) == (stale, [key for key, reason in equivalents.items() if len(reason) < 20])


def test_the_equivalents_reader_refuses_an_entry_without_a_reason(tmp_path: Path) -> None:
    """An equivalents line must be `file:line:col | mutation | reason`; one without its reason
    stops the run, naming the line."""
    listed = tmp_path / "equivalents.txt"
    listed.write_text("# a comment\nstore/_fs.py:35:38 | 0 -> 1 | the default is never used\n")
    assert 1 == len(_mutate_tool().read_equivalents(listed))
    listed.write_text("store/_fs.py:35:38 | 0 -> 1\n")
    with pytest.raises(SystemExit, match=r"equivalents\.txt:1: want"):
        _mutate_tool().read_equivalents(listed)
