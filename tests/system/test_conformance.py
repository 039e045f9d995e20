"""`idstitch conform`: every vector against idstitch's own driver, and a broken driver caught."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from idstitch.conformance import load_vectors
from support import SUPPORT
from support.audit import in_process, json_lines

pytestmark = pytest.mark.processes

DRIVER = [sys.executable, "-m", "idstitch.conformance.driver"]
BROKEN = [sys.executable, str(SUPPORT / "broken_driver.py")]
VECTORS = Path(str(__import__("importlib.resources").resources.files("idstitch.conformance")))


def _some_vectors(tmp_path: Path, *names: str) -> str:
    """A vectors folder holding copies of the named installed vectors."""
    folder = tmp_path / "vectors"
    folder.mkdir()
    for name in names:
        shutil.copy(VECTORS / "vectors" / f"{name}.json", folder)
    return str(folder)


def _verdicts(stdout: str) -> tuple[dict[str, bool], dict[str, int]]:
    """Each vector's pass/fail and each rule's failure count, from ``--json`` output."""
    lines = json_lines(stdout)
    vectors = {line["name"]: line["passed"] for line in lines if line["type"] == "vector"}
    rules = {line["rule"]: line["failed"] for line in lines if line["type"] == "rule"}
    return vectors, rules


def test_every_vector_passes_against_idstitchs_own_driver() -> None:
    """All installed vectors pass, one driver process per vector process, every rule row ok."""
    result = in_process("conform", "--json", "--", *DRIVER)
    vectors, rules = _verdicts(result.stdout)
    names = [vector["name"] for vector in load_vectors()]
    assert (0, dict.fromkeys(names, True), "") == (result.code, vectors, result.stderr)
    assert dict.fromkeys(rules, 0) == rules
    assert {f"R{n}" for n in range(1, 17)} == set(rules)


def test_the_table_names_each_rule_and_the_total(tmp_path: Path) -> None:
    """The text output: a header, one `ok` row per rule the vectors name, then the summary."""
    folder = _some_vectors(tmp_path, "seed-illegal-ids", "r07-logout-without-a-user")
    result = in_process("conform", "--vectors", folder, "--", *DRIVER)
    expected = [
        "rule  vectors  passed  failed",
        "R7         1       1       0  ok",
        "R10        1       1       0  ok",
        "R13        1       1       0  ok",
        "2 vectors: 2 passed, 0 failed",
    ]
    assert (0, expected) == (result.code, result.stdout.splitlines())


def test_wire_mode_checks_what_reaches_the_capture_server(tmp_path: Path) -> None:
    """--wire: idstitch's real PostHog client passes the alias direction, person-profile and
    no-$identify checks."""
    folder = _some_vectors(
        tmp_path, "seed-logout-then-second-user", "seed-ci-stamp-without-alias", "r14-do-not-track"
    )
    result = in_process("conform", "--wire", "--json", "--vectors", folder, "--", *DRIVER)
    _, rules = _verdicts(result.stdout)
    expected = {
        "R1": 0,
        "R2": 0,
        "R3": 0,
        "R7": 0,
        "R10": 0,
        "R11": 0,
        "R14": 0,
        "wire:alias-direction": 0,
        "wire:person-profiles": 0,
        "wire:no-identify": 0,
    }
    assert (0, expected) == (result.code, rules)


def test_a_driver_that_aliases_again_fails_r3_and_r6(tmp_path: Path) -> None:
    """A driver reporting an alias for every user event fails the vectors that see a user
    twice (R3, R6), and passes the one where each device sees one user once."""
    folder = _some_vectors(
        tmp_path, "r06-login-after-the-hook", "r03-first-identity-only", "r07-logout-without-a-user"
    )
    result = in_process("conform", "--json", "--vectors", folder, "--", *BROKEN, "alias-twice")
    vectors, _ = _verdicts(result.stdout)
    expected = {
        "r03-first-identity-only": False,
        "r06-login-after-the-hook": False,
        "r07-logout-without-a-user": True,
    }
    assert (1, expected) == (result.code, vectors)


def test_a_reversed_alias_on_the_wire_is_caught(tmp_path: Path) -> None:
    """A driver whose client sends $create_alias with the device as distinct_id passes every
    step and fails the wire's alias-direction check."""
    folder = _some_vectors(tmp_path, "seed-logout-then-second-user")
    argv = ["conform", "--wire", "--json", "--vectors", folder, "--", *BROKEN, "reversed-alias"]
    result = in_process(*argv)
    _, rules = _verdicts(result.stdout)
    expected = {
        "R3": 0,
        "R7": 0,
        "R10": 0,
        "wire:alias-direction": 1,
        "wire:person-profiles": 0,
        "wire:no-identify": 0,
    }
    assert (1, expected) == (result.code, rules)


@pytest.mark.parametrize(
    ("driver", "error"),
    [
        (
            ["no-such-driver-command"],
            (
                "idstitch: error: cannot run the driver: cannot start 'no-such-driver-command': "
                "No such file or directory\n"
            ),
        ),
        (
            [sys.executable, "-c", "pass"],
            (
                "idstitch: error: cannot run the driver: the driver answered no request: "
                "process 1, step 1 (open): the driver ended without a reply\n"
            ),
        ),
    ],
)
def test_a_driver_that_cannot_run_exits_2(tmp_path: Path, driver: list[str], error: str) -> None:
    """A command that cannot start, or answers nothing, is exit 2 with one line, no table."""
    folder = _some_vectors(tmp_path, "r07-logout-without-a-user")
    result = in_process("conform", "--vectors", folder, "--", *driver)
    assert (2, "", error) == result


def test_unreadable_vectors_exit_2(tmp_path: Path) -> None:
    """A vectors folder holding a file of another version is exit 2, naming the file."""
    folder = tmp_path / "vectors"
    folder.mkdir()
    (folder / "old.json").write_text('{"schema": 0}')
    result = in_process("conform", "--vectors", str(folder), "--", *DRIVER)
    expected = (
        2,
        "",
        (
            "idstitch: error: cannot read the vectors: old.json: not a version 1 vector "
            '(its "schema" field)\n'
        ),
    )
    assert expected == result
