"""Writes the conformance vectors: ``python -m idstitch.conformance.generate [--seed N] [--check]``.

Every vector's scenario is written here: one per seed scenario, one or more
per rule, and ``--count`` sequences drawn at random from ``--seed``. The
expected replies come from the reference model (:mod:`._model`), never from
idstitch's code; then idstitch's own driver runs the vector in this process
and the generator stops at the first disagreement, naming the vector and the
step, and writes nothing. ``--check`` writes nothing either: it says
whether the vectors in the folder are exactly what this script makes
(a test runs it so).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from ._model import Model, illegal_user_id, run_model
from ._runner import SCHEMA_VERSION, run_vector
from .driver import Driver

__all__ = ["DEFAULT_COUNT", "DEFAULT_SEED", "main", "scenarios", "vectors"]

#: The seed the checked-in generated vectors were drawn with, and how many.
DEFAULT_SEED = 15
DEFAULT_COUNT = 24

VECTORS = Path(__file__).resolve().parent / "vectors"

USERS = ("user-a", "user-b", "user-c")
#: R13's kinds of illegal id, one each: blank, placeholders in any case and exactly, quoted,
#: invisible only, one character too long.
ILLEGAL = (
    "",
    "   ",
    "anonymous",
    "GUEST",
    "Distinct_Id",
    "not_authenticated",
    "null",
    "None",
    "NaN",
    "0",
    "[object Object]",
    "'guest'",
    '"undefined"',
    "\u200b",
    "\ufeff\u200b",
    "'\u200b'",
    "u" * 201,
)


# ------------------------------------------------------------- step helpers


def open_(
    runtime: str = "persistent",
    *,
    env: dict[str, str] | None = None,
    opt_out_vars: list[str] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "open", "runtime": runtime, "env": env or {}}
    if opt_out_vars:
        step["opt_out_vars"] = opt_out_vars
    if command is not None:
        step["command"] = command
    return step


def response(user_id: str) -> dict[str, Any]:
    return {"op": "response", "user_id": user_id}


def login(user_id: str) -> dict[str, Any]:
    return {"op": "login", "user_id": user_id}


def concurrent(user_id: str, times: int = 8) -> dict[str, Any]:
    return {"op": "concurrent_responses", "user_ids": [user_id] * times}


def capture(event: str = "cli_event") -> dict[str, Any]:
    return {"op": "capture", "event": event}


LOGOUT = {"op": "logout"}
CLEAR = {"op": "clear"}
REFUSE = {"op": "refuse_next_alias"}
EXIT = {"op": "exit"}
OPTED_OUT = {"DO_NOT_TRACK": "1"}


def run(*steps: dict[str, Any], **opening: Any) -> dict[str, Any]:  # noqa: ANN401
    """One process: open (with ``opening``), ``steps``, exit."""
    return {"steps": [open_(**opening), *steps, EXIT]}


def together(copies: int, *steps: dict[str, Any]) -> dict[str, Any]:
    """``copies`` of one persistent process at once over the same state dir."""
    return {**run(*steps), "parallel": copies}


def scenario(
    name: str,
    title: str,
    rules: list[str],
    *processes: dict[str, Any],
    seed: str | None = None,
    setup: dict[str, str] | None = None,
) -> dict[str, Any]:
    vector: dict[str, Any] = {"name": name, "title": title, "rules": rules}
    if seed is not None:
        vector["seed_scenario"] = seed
    if setup is not None:
        vector["setup"] = setup
    vector["processes"] = list(processes)
    return vector


def scenarios() -> list[dict[str, Any]]:
    """The hand-written scenarios: the seed's, then the rules', steps only."""
    a, b, c = USERS
    return [
        scenario(
            "seed-stale-disk-live-token",
            "The disk says user A, the live response says B: B is stamped, never aliased",
            ["R1", "R3", "R4", "R10"],
            run(capture(), response(a), capture()),
            run(capture(), response(b), capture()),
            run(capture()),
            seed="stale disk + live token",
        ),
        scenario(
            "seed-ci-stamp-without-alias",
            "A CI run stamps the user for its events and the post-command event, aliases nothing "
            "and writes nothing",
            ["R1", "R2", "R11"],
            run(capture(), response(a), capture(), runtime="ephemeral", command="deploy"),
            seed="CI stamp without alias",
        ),
        scenario(
            "seed-logout-then-second-user",
            "Login as A, logout, login as B: B aliases a fresh device, never A's",
            ["R3", "R7", "R10"],
            run(login(a), capture(), LOGOUT, capture(), login(b), capture()),
            run(capture()),
            seed="logout then second user",
        ),
        scenario(
            "seed-failed-enqueue-retried",
            "The sink refuses the alias: nothing changes, and the login command retries it",
            ["R6", "R9", "R10"],
            run(REFUSE, response(a), capture(), login(a), capture(), response(a)),
            seed="failed enqueue retried",
        ),
        scenario(
            "seed-failed-enqueue-next-process",
            "A refused alias is retried by the next process's first response",
            ["R9", "R10"],
            run(REFUSE, response(a), capture()),
            run(response(a), capture()),
            seed="failed enqueue retried",
        ),
        scenario(
            "seed-concurrent-alias-once",
            "Eight concurrent authenticated responses alias once",
            ["R5", "R10"],
            run(capture(), concurrent(a), capture(), concurrent(a)),
            seed="concurrent alias-once",
        ),
        scenario(
            "r05-processes-alias-once",
            "Four processes see the first response at once: one alias between them",
            ["R3", "R5", "R10", "R12"],
            run(capture()),
            together(4, response(a), capture(), login(a)),
            run(capture(), response(b), capture()),
        ),
        scenario(
            "r12-processes-write-at-once",
            "Four processes stamp a second user at once: every write lands, nothing is aliased",
            ["R3", "R4", "R12"],
            run(response(a)),
            together(4, capture(), response(b), login(b), capture()),
            run(capture()),
        ),
        scenario(
            "seed-illegal-ids",
            "Every kind of illegal user id is refused and changes nothing",
            ["R13"],
            run(
                *[response(bad) for bad in ILLEGAL],
                login("null"),
                capture(),
                response(a),
                response("anonymous"),
                capture(),
            ),
            seed="illegal ids",
        ),
        scenario(
            "r01-stamp-at-first-response",
            "Events before the first response go under the device, after it under the user",
            ["R1", "R10"],
            run(capture(), response(a), capture(), response(a), capture()),
        ),
        scenario(
            "r02-ephemeral-writes-nothing",
            "An ephemeral run over no state writes nothing, whatever it does",
            ["R2"],
            run(capture(), response(a), CLEAR, login(b), LOGOUT, capture(), runtime="ephemeral"),
            run(capture()),
        ),
        scenario(
            "r02-ephemeral-starts-from-the-dir",
            "An ephemeral run starts from the identity a persistent run left",
            ["R1", "R2", "R3"],
            run(response(a)),
            run(capture(), response(b), capture(), runtime="ephemeral"),
            run(capture()),
        ),
        scenario(
            "r03-first-identity-only",
            "A device aliased to A is never aliased to anyone else, in this process or later",
            ["R3", "R4", "R10"],
            run(response(a), response(b), capture(), login(c)),
            run(response(a), capture(), response(b), capture()),
        ),
        scenario(
            "r06-login-after-the-hook",
            "The login command after the response hook stitched sends nothing",
            ["R6", "R10"],
            run(response(a), login(a), capture()),
            run(login(a), capture()),
        ),
        scenario(
            "r07-logout-without-a-user",
            "Logout rotates the device even with no user; the next login aliases the new one",
            ["R7", "R10"],
            run(capture(), LOGOUT, capture(), LOGOUT),
            run(capture(), login(a), capture()),
        ),
        scenario(
            "r08-clear-keeps-the-device",
            "A transient failure forgets the user, keeps the device and its alias",
            ["R3", "R8", "R16"],
            run(response(a), CLEAR, capture(), response(a), response(b), CLEAR),
            run(capture(), response(a), capture()),
        ),
        scenario(
            "r11-post-command-event",
            "The post-command event carries the identity at the command's end",
            ["R7", "R11"],
            run(response(a), command="login"),
            run(capture(), LOGOUT, command="logout"),
            run(command="status"),
        ),
        scenario(
            "r14-do-not-track",
            "DO_NOT_TRACK: nothing sent, nothing written; the next run is as before",
            ["R14"],
            run(response(a)),
            run(capture(), response(b), capture(), env=OPTED_OUT, command="deploy"),
            run(capture()),
        ),
        scenario(
            "r14-host-opt-out-variable",
            "The host's own opt-out variable, any truthy spelling, is an opt-out too",
            ["R14"],
            run(
                capture(),
                response(a),
                capture(),
                env={"MYCLI_TELEMETRY_OFF": "Yes"},
                opt_out_vars=["MYCLI_TELEMETRY_OFF"],
            ),
            run(capture(), env={"DO_NOT_TRACK": "on"}, runtime="ephemeral"),
            run(capture()),
        ),
        scenario(
            "r16-opted-out-logout-is-kept",
            "A logout while opted out is the one write: later runs do not come back as the user",
            ["R7", "R14", "R16"],
            run(response(a)),
            run(LOGOUT, env=OPTED_OUT),
            run(capture()),
        ),
        scenario(
            "r16-opted-out-clear-is-kept",
            "A clear while opted out forgets the user on disk and keeps the device",
            ["R8", "R14", "R16"],
            run(response(a)),
            run(CLEAR, env=OPTED_OUT),
            run(capture(), response(a)),
        ),
        scenario(
            "r15-unusable-state-dir",
            "A state dir that cannot be used: the run goes on in memory, stamps, aliases nothing",
            ["R1", "R2", "R15"],
            run(capture(), response(a), capture(), LOGOUT, capture(), command="deploy"),
            setup={"state_dir": "file"},
        ),
    ]


# ------------------------------------------------------------- generated sequences


def _drawn(rng: random.Random, number: int, seed: int) -> dict[str, Any]:
    """One random scenario, drawn step by step beside a live model (to keep out what the
    rules leave open: forgetting a stored user in an ephemeral run, R2 against R16)."""
    model = Model()
    processes = []
    for _ in range(rng.randint(1, 3)):
        runtime = rng.choice(["persistent", "persistent", "ephemeral"])
        env = OPTED_OUT if rng.random() < 0.15 else {}
        command = rng.choice([None, None, "deploy"])
        opening = open_(runtime, env=env, command=command)
        model.step(opening)
        steps = [opening]
        refusals = 0
        for _ in range(rng.randint(2, 8)):
            op = rng.choice(
                ["response"] * 4 + ["login", "logout", "clear", "refuse", "capture"] * 2 + ["conc"]
            )
            step: dict[str, Any]
            if op in ("response", "login"):
                user = rng.choice(ILLEGAL) if rng.random() < 0.1 else rng.choice(USERS)
                step = response(user) if op == "response" else login(user)
            elif op in ("logout", "clear"):
                proc = model.proc
                assert proc is not None
                open_question = not proc.lasting and model.holds_user()
                if open_question and (proc.ephemeral or not proc.opted_out):
                    continue
                step = LOGOUT if op == "logout" else CLEAR
            elif op == "refuse":
                if refusals == 2:  # R9's per-process bound is idstitch's policy: stay below it
                    continue
                refusals += 1
                step = REFUSE
            elif op == "conc":
                step = concurrent(rng.choice(USERS), 4)
            else:
                step = capture(f"event-{len(steps)}")
            model.step(step)
            steps.append(step)
        model.step(EXIT)
        steps.append(EXIT)
        processes.append({"steps": steps})
    drawn = scenario(
        f"gen-{number:03d}", f"Sequence {number} drawn with seed {seed}", [], *processes
    )
    drawn["rules"] = _rules_of(drawn)
    return drawn


def _rules_of(vector: dict[str, Any]) -> list[str]:
    """The rules a generated scenario exercises, read from its steps."""
    found = {"R1"}
    for process in vector["processes"]:
        opening = process["steps"][0]
        if opening["runtime"] == "ephemeral":
            found.add("R2")
        if opening.get("env"):
            found.add("R14")
        if opening.get("command"):
            found.add("R11")
        for step in process["steps"]:
            op = step["op"]
            user = step.get("user_id")
            if user is not None and illegal_user_id(user):
                found.add("R13")
            found |= {
                "login": {"R6"},
                "concurrent_responses": {"R5"},
                "logout": {"R7", "R16"},
                "clear": {"R8", "R16"},
                "refuse_next_alias": {"R9"},
            }.get(op, set())
    if len({s.get("user_id") for p in vector["processes"] for s in p["steps"]} - {None}) > 1:
        found |= {"R3", "R4"}
    return sorted(found, key=lambda rule: int(rule[1:]))


# ------------------------------------------------------------- writing


class _Local:
    """idstitch's driver in this process, behind the runner's session interface."""

    def __init__(self) -> None:
        self.driver = Driver()

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(
            json.dumps(self.driver.handle(json.loads(json.dumps(message))))
        )
        return reply

    def finish(self) -> str | None:
        return None


def vectors(seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT) -> list[dict[str, Any]]:
    """Every vector, expected replies filled in by the model and checked against idstitch.

    Raises :class:`SystemExit` naming the vector and the step where idstitch and the model
    disagree (one of them breaks a rule: find out which before writing anything).
    """
    rng = random.Random(seed)
    made = scenarios() + [_drawn(rng, number, seed) for number in range(1, count + 1)]
    finished = []
    for vector in made:
        expected = run_model(vector)
        for process, want in zip(vector["processes"], expected, strict=True):
            process["replies"] = want["replies"]
            process["writes"] = want["writes"]
        whole = {"schema": SCHEMA_VERSION, **vector}
        result = run_vector(whole, _Local)
        if not result.passed:
            raise SystemExit(
                f"generate: idstitch and the reference model disagree on {whole['name']}:\n  "
                + "\n  ".join(result.problems)
            )
        finished.append(whole)
    return finished


def _text(vector: dict[str, Any]) -> str:
    return json.dumps(vector, indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the vectors folder."""
    parser = argparse.ArgumentParser(prog="python -m idstitch.conformance.generate")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--out", type=Path, default=VECTORS)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    made = {f"{v['name']}.json": _text(v) for v in vectors(args.seed, args.count)}
    present = {p.name: p.read_text() for p in args.out.glob("*.json") if p.name != "schema.json"}
    if args.check:
        stale = sorted(set(made) ^ set(present) | {n for n in made if made[n] != present.get(n)})
        for name in stale:
            print(f"generate: {name} differs from what the generator makes", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in set(present) - set(made):
        (args.out / name).unlink()
    for name, text in made.items():
        (args.out / name).write_text(text)
    print(f"generate: wrote {len(made)} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
