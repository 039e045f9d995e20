"""The vectors, the reference model and the runner's comparison, in this process."""

from __future__ import annotations

import ast
import copy
import json
import re
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the package ships no stubs
import pytest
from idstitch.conformance import generate, load_vectors
from idstitch.conformance._model import illegal_user_id, run_model
from idstitch.conformance._runner import run_vector
from idstitch.events import user_id_problem

FOLDER = resources.files("idstitch.conformance").joinpath("vectors")
SEED_SCENARIOS = {
    "stale disk + live token",
    "CI stamp without alias",
    "logout then second user",
    "failed enqueue retried",
    "concurrent alias-once",
    "illegal ids",
}


def _vector(name: str) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(FOLDER.joinpath(f"{name}.json").read_text())
    return vector


def test_every_vector_follows_the_schema() -> None:
    """Each installed vector validates against vectors/schema.json (draft 2020-12)."""
    schema = json.loads(FOLDER.joinpath("schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = {v["name"]: [e.message for e in validator.iter_errors(v)] for v in load_vectors()}
    assert {name: [] for name in errors} == errors


def test_the_checked_in_vectors_are_what_the_generator_makes() -> None:
    """`generate --check`: the folder holds exactly the vectors the scenarios, the model and the
    seed give (and idstitch agrees with every one)."""
    assert 0 == generate.main(["--check"])


def test_each_file_is_named_after_its_vector_and_names_its_rules() -> None:
    """A vector's file name is its name; every rule but R17 (the network's timing: not what a
    step returns) is exercised, and every seed scenario is covered."""
    vectors = load_vectors()
    files = sorted(p.name for p in FOLDER.iterdir() if p.name != "schema.json")
    assert sorted(f"{v['name']}.json" for v in vectors) == files
    rules = {rule for vector in vectors for rule in vector["rules"]}
    assert {f"R{n}" for n in range(1, 17)} == rules
    assert SEED_SCENARIOS == {v["seed_scenario"] for v in vectors if "seed_scenario" in v}


def test_the_model_imports_nothing_of_idstitch() -> None:
    """The reference model is written from the rules: it imports no idstitch module at all."""
    source = FOLDER.joinpath("..", "_model.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert {"__future__", "dataclasses", "typing", "unicodedata"} == imported


@pytest.mark.parametrize(
    "user_id",
    [*generate.ILLEGAL, *generate.USERS, "héllo", "a\u200bb", "\u00ad", "x\ny", " 'guest' "],
)
def test_the_model_and_idstitch_agree_on_which_ids_are_illegal(user_id: str) -> None:
    """R13 as the model reads it is R13 as idstitch enforces it, on every id the vectors use."""
    assert (user_id_problem(user_id) is not None) == illegal_user_id(user_id)


def test_the_generator_stops_when_idstitch_and_the_model_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model expecting a second alias (R3 broken in the model) stops the generator, naming
    the vector and the step, and nothing is written."""

    def wrong(scenario: dict[str, Any]) -> list[dict[str, Any]]:
        expected = run_model(scenario)
        if scenario["name"] == "r06-login-after-the-hook":
            reply = expected[0]["replies"][2]  # login(a) after the hook stitched a
            reply["sent"] = [{"type": "alias", "user_id": "user-a", "device_id": "D1"}]
        return expected

    monkeypatch.setattr(generate, "run_model", wrong)
    with pytest.raises(SystemExit) as stopped:
        generate.vectors()
    expected = (
        "generate: idstitch and the reference model disagree on r06-login-after-the-hook:\n"
        "  process 1, step 3 (login): sent [], expected [{'type': 'alias', 'user_id': "
        "'user-a', 'device_id': 'D1'}]"
    )
    assert expected == str(stopped.value)


def test_a_fresh_device_must_be_one_never_seen() -> None:
    """Device symbols compare up to renaming, and one-to-one: a vector expecting the old
    device after logout fails, naming the step and both ids."""
    vector = copy.deepcopy(_vector("r07-logout-without-a-user"))
    vector["processes"][0]["replies"][2]["distinct_id"] = "D1"  # logout kept the device?
    result = run_vector(vector, generate._Local)
    shown = [re.sub(r"'[0-9a-f-]{36}'", "<device>", problem) for problem in result.problems]
    assert ["process 1, step 3 (logout): distinct id <device>, expected D1"] == shown


def test_a_write_where_none_is_allowed_fails() -> None:
    """The runner watches the state dir: an ephemeral run said to write, or a persistent
    run whose writes are checked, fails with what happened."""
    vector = copy.deepcopy(_vector("seed-ci-stamp-without-alias"))
    vector["processes"][0]["writes"] = True
    assert ["process 1, the state dir was not written"] == run_vector(
        vector, generate._Local
    ).problems
