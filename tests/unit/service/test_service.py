"""The identity service against the seed's scenarios and rules R1-R15, on real files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click
import idstitch
import pytest
from click.testing import CliRunner
from idstitch.adapters.runtime import Runtime
from idstitch.adapters.sinks import RecordedAlias, RecordedCapture, RecordingSink
from idstitch.events import IdentityError, IllegalUserIdError
from idstitch.machine import IdentityStitch, State, replay
from idstitch.store import FileLog
from support.cli_hosts import Terminal
from support.service import DeviceIds, log_records, open_stitch, replay_dir


def kinds(state_dir: Path) -> list[tuple[str, bool | None]]:
    """(kind, alias flag) of every record of the state dir's log."""
    return [(r["kind"], r.get("alias")) for r in log_records(state_dir)]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_persistent_first_login_aliases_once_and_persists(tmp_path: Path) -> None:
    """R1, R2: the first response on a developer's machine aliases the device once and persists."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    device = stitch.device_id
    stitch.observe_authenticated_response("user-a")
    assert (State.ALIASED, "user-a", "user-a") == (stitch.state, stitch.user_id, stitch.distinct_id)
    assert [RecordedAlias("user-a", device)] == sink.aliases
    assert [("genesis", None), ("response", True)] == kinds(tmp_path)
    again = open_stitch(tmp_path, sink=sink)
    again.observe_authenticated_response("user-a")
    assert (State.ALIASED, device, "user-a") == (again.state, again.device_id, again.distinct_id)
    assert 1 == len(sink.aliases)
    assert [("genesis", None), ("response", True)] == kinds(tmp_path)


def test_ci_stamps_without_alias_and_writes_no_file(tmp_path: Path) -> None:
    """R1, R2: in CI the user is stamped, nothing is aliased and no file is written."""
    state_dir = tmp_path / "state"
    sink = RecordingSink()
    stitch = IdentityStitch.open(state_dir=state_dir, sink=sink, env={"CI": "true"})
    stitch.observe_authenticated_response("user-a")
    assert Runtime.EPHEMERAL == stitch.runtime
    assert (State.STAMPED, "user-a") == (stitch.state, stitch.distinct_id)
    assert [] == sink.aliases
    assert {} == tree(state_dir)
    assert not state_dir.exists()


def test_stale_persisted_identity_is_stamped_over_without_alias(tmp_path: Path) -> None:
    """R4: disk says user A, the live token says B: B is stamped, never aliased."""
    sink = RecordingSink()
    open_stitch(tmp_path, sink=sink).observe_authenticated_response("user-a")
    stitch = open_stitch(tmp_path, sink=sink)
    assert "user-a" == stitch.distinct_id
    stitch.observe_authenticated_response("user-b")
    assert (State.STAMPED, "user-b") == (stitch.state, stitch.distinct_id)
    assert ["user-a"] == [a.user_id for a in sink.aliases]
    assert ("response", False) == kinds(tmp_path)[-1]


def test_relogin_as_another_user_does_not_realias(tmp_path: Path) -> None:
    """R3: a device is aliased to the first user only; a second login is a stamp."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.login("user-a")
    stitch.login("user-b")
    assert (State.STAMPED, "user-b") == (stitch.state, stitch.distinct_id)
    assert ["user-a"] == [a.user_id for a in sink.aliases]
    stitch.login("user-a")
    assert (State.ALIASED, "user-a") == (stitch.state, stitch.distinct_id)
    assert 1 == len(sink.aliases)


def test_response_hook_then_login_command_alias_once(tmp_path: Path) -> None:
    """R6: the login command after the response hook stitched changes nothing."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.observe_authenticated_response("user-a")
    stitch.login("user-a")
    assert 1 == len(sink.aliases)
    assert [("genesis", None), ("response", True)] == kinds(tmp_path)


def test_concurrent_first_responses_in_threads_alias_exactly_once(tmp_path: Path) -> None:
    """R5: 16 threads seeing their first response at once alias once between them."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    barrier = threading.Barrier(16)

    def hook() -> None:
        barrier.wait()
        stitch.observe_authenticated_response("user-a")

    threads = [threading.Thread(target=hook) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [RecordedAlias("user-a", stitch.device_id)] == sink.aliases
    assert [("genesis", None), ("response", True)] == kinds(tmp_path)


def test_concurrent_first_responses_in_asyncio_tasks_alias_exactly_once(tmp_path: Path) -> None:
    """R5: asyncio tasks sharing one service (several transports) alias once."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)

    async def transport(n: int) -> None:
        await asyncio.sleep(0)
        stitch.observe_authenticated_response("user-a")
        await asyncio.sleep(0)
        if n % 2:
            stitch.login("user-a")

    async def main() -> None:
        await asyncio.gather(*(transport(n) for n in range(20)))

    asyncio.run(main())
    assert 1 == len(sink.aliases)
    assert 1 == sum(1 for _, alias in kinds(tmp_path) if alias)


def test_two_services_on_one_state_dir_alias_once(tmp_path: Path) -> None:
    """R5 across instances: the second reads what the first appended before deciding."""
    sink = RecordingSink()
    first = open_stitch(tmp_path, sink=sink)
    second = open_stitch(tmp_path, sink=sink)
    first.observe_authenticated_response("user-a")
    second.observe_authenticated_response("user-a")
    assert 1 == len(sink.aliases)
    assert (State.ALIASED, "user-a") == (second.state, second.distinct_id)
    assert [("genesis", None), ("response", True)] == kinds(tmp_path)


def test_login_a_logout_login_b_aliases_the_new_device(tmp_path: Path) -> None:
    """R3, R7: after logout the next login aliases a fresh device, never the old one."""
    sink = RecordingSink()
    devices = DeviceIds()
    stitch = open_stitch(tmp_path, sink=sink, devices=devices)
    first_device = stitch.device_id
    stitch.login("user-a")
    stitch.logout()
    assert (State.RESET, None) == (stitch.state, stitch.user_id)
    second_device = stitch.device_id
    assert second_device != first_device
    assert second_device == stitch.distinct_id
    stitch.login("user-b")
    expected = [RecordedAlias("user-a", first_device), RecordedAlias("user-b", second_device)]
    assert expected == sink.aliases
    assert devices.minted == [first_device, second_device]
    reopened = open_stitch(tmp_path, sink=sink)
    assert (State.ALIASED, second_device, "user-b") == (
        reopened.state,
        reopened.device_id,
        reopened.distinct_id,
    )


def test_failed_enqueue_unstashes_and_a_retry_aliases_once(tmp_path: Path) -> None:
    """R9: an alias the sink refused is undone; the next response or login retries it once."""
    sink = RecordingSink(fail_aliases=1)
    stitch = open_stitch(tmp_path, sink=sink)
    device = stitch.device_id
    stitch.observe_authenticated_response("user-a")
    assert (State.ANONYMOUS, None, device) == (stitch.state, stitch.user_id, stitch.distinct_id)
    assert [] == sink.aliases
    reopened = open_stitch(tmp_path, sink=sink)
    assert (State.ANONYMOUS, device) == (reopened.state, reopened.distinct_id)
    reopened.login("user-a")
    stitch.observe_authenticated_response("user-a")
    assert [RecordedAlias("user-a", device)] == sink.aliases
    assert [
        ("genesis", None),
        ("response", True),
        ("enqueue_failure", None),
        ("login", True),
    ] == kinds(tmp_path)


def test_a_sink_that_keeps_refusing_costs_a_bounded_number_of_records(tmp_path: Path) -> None:
    """R9: responses retry a refused alias 3 times in a process, then stamp; login still retries."""
    sink = RecordingSink(fail_aliases=1_000)
    stitch = open_stitch(tmp_path, sink=sink)
    for _ in range(200):
        stitch.observe_authenticated_response("user-a")
    assert (State.STAMPED, "user-a", []) == (stitch.state, stitch.distinct_id, sink.aliases)
    failed_try = [("response", True), ("enqueue_failure", None)]
    assert [("genesis", None), *failed_try * 3, ("response", False)] == kinds(tmp_path)
    sink.fail_aliases = 0
    stitch.login("user-a")
    assert (State.ALIASED, [RecordedAlias("user-a", stitch.device_id)]) == (
        stitch.state,
        sink.aliases,
    )
    reopened = open_stitch(tmp_path, sink=RecordingSink())
    assert (State.ALIASED, "user-a") == (reopened.state, reopened.identity.linked_user)


class _SilentSink(RecordingSink):
    """A sink that says it sends nothing (no key, or disabled)."""

    sends = False


def test_a_sink_that_sends_nothing_is_never_asked_for_an_alias(tmp_path: Path) -> None:
    """``sends = False``: users are stamped, and the device stays free for a later alias."""
    stitch = open_stitch(tmp_path, sink=_SilentSink())
    for _ in range(5):
        stitch.observe_authenticated_response("user-a")
    stitch.login("user-a")
    assert (State.STAMPED, "user-a") == (stitch.state, stitch.distinct_id)
    assert [("genesis", None), ("response", False)] == kinds(tmp_path)
    sink = RecordingSink()
    reopened = open_stitch(tmp_path, sink=sink)
    reopened.observe_authenticated_response("user-a")
    assert [RecordedAlias("user-a", stitch.device_id)] == sink.aliases


def test_a_sink_that_raises_on_alias_is_an_enqueue_failure(tmp_path: Path) -> None:
    """R9, R15: a raising sink is treated as "not queued", and nothing reaches the host."""
    sink = RecordingSink(raise_on_alias=True)
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.observe_authenticated_response("user-a")
    assert State.ANONYMOUS == stitch.state
    sink.raise_on_alias = False
    stitch.observe_authenticated_response("user-a")
    assert (State.ALIASED, 1) == (stitch.state, len(sink.aliases))


def test_enqueue_failure_after_logout_returns_to_reset(tmp_path: Path) -> None:
    """R9: un-stashing returns to the state before the alias, here ``reset``."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.logout()
    sink.fail_aliases = 1
    stitch.login("user-b")
    assert (State.RESET, None) == (stitch.state, stitch.user_id)


def test_logout_with_no_user_still_rotates(tmp_path: Path) -> None:
    """R7: logout rotates the device even when no user was ever known."""
    stitch = open_stitch(tmp_path)
    before = stitch.device_id
    stitch.logout()
    assert State.RESET == stitch.state
    assert before != stitch.device_id
    assert ["genesis", "logout"] == [kind for kind, _ in kinds(tmp_path)]
    assert stitch.device_id == open_stitch(tmp_path).device_id


def test_without_a_sink_nothing_is_sent_and_no_alias_is_spent(tmp_path: Path) -> None:
    """open(sink=None): users are stamped; the device's one alias waits for a real sink."""
    quiet = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", env={})
    quiet.login("user-a")
    assert (State.STAMPED, None) == (quiet.state, quiet.identity.linked_user)
    sink = RecordingSink()
    open_stitch(tmp_path, sink=sink).login("user-a")
    assert [RecordedAlias("user-a", quiet.device_id)] == sink.aliases


def test_a_clear_after_logout_makes_the_state_anonymous(tmp_path: Path) -> None:
    """R8 "the state becomes anonymous", from reset too: one clear record, the new device kept."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    stitch.logout()
    device = stitch.device_id
    stitch.clear_distinct_id()
    stitch.clear_distinct_id()
    assert (State.ANONYMOUS, device) == (stitch.state, stitch.distinct_id)
    assert ["genesis", "login", "logout", "clear"] == [kind for kind, _ in kinds(tmp_path)]
    assert State.ANONYMOUS == replay_dir(tmp_path).state


def test_transient_clear_keeps_the_device(tmp_path: Path) -> None:
    """R8: clear forgets the user but keeps the device and its alias."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    device = stitch.device_id
    stitch.observe_authenticated_response("user-a")
    stitch.clear_distinct_id()
    assert (State.ANONYMOUS, device, None, device) == (
        stitch.state,
        stitch.device_id,
        stitch.user_id,
        stitch.distinct_id,
    )
    stitch.observe_authenticated_response("user-a")
    assert (State.ALIASED, 1) == (stitch.state, len(sink.aliases))
    stitch.clear_distinct_id()
    stitch.clear_distinct_id()
    assert ["genesis", "response", "clear", "response", "clear"] == [
        kind for kind, _ in kinds(tmp_path)
    ]


@pytest.mark.parametrize(
    "user_id",
    [
        "",
        "  ",
        "anonymous",
        "GUEST",
        "Distinct_ID",
        "null",
        "None",
        "NaN",
        "0",
        '"undefined"',
        "'false'",
        "[object Object]",
        "a\x00b",
        "x" * 201,
    ],
)
def test_illegal_ids_are_refused_and_change_nothing(
    tmp_path: Path, user_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """R13: an illegal id returns False, warns once per problem, changes neither state nor log."""
    stitch = open_stitch(tmp_path)
    before = (tmp_path / "identity.jsonl").read_bytes()
    with caplog.at_level(logging.WARNING, logger="idstitch"):
        taken = [call(user_id) for call in (stitch.observe_authenticated_response, stitch.login)]
    assert [False, False] == taken
    assert 1 == sum("refused" in record.getMessage() for record in caplog.records)  # once
    assert (State.ANONYMOUS, None) == (stitch.state, stitch.user_id)
    assert before == (tmp_path / "identity.jsonl").read_bytes()


@pytest.mark.parametrize("user_id", ["", "null", "x" * 201])
def test_strict_mode_raises_for_an_illegal_id(tmp_path: Path, user_id: str) -> None:
    """strict=True (a host's own tests) raises IllegalUserIdError, an IdentityError and a
    ValueError; nothing changes."""
    stitch = IdentityStitch.open(
        state_dir=tmp_path, runtime=Runtime.PERSISTENT, env={}, strict=True
    )
    before = (tmp_path / "identity.jsonl").read_bytes()
    for call in (stitch.observe_authenticated_response, stitch.login):
        with pytest.raises(IllegalUserIdError) as caught:
            call(user_id)
        assert isinstance(caught.value, IdentityError)
        assert isinstance(caught.value, ValueError)
    assert (State.ANONYMOUS, None) == (stitch.state, stitch.user_id)
    assert before == (tmp_path / "identity.jsonl").read_bytes()


def test_replaying_the_log_equals_the_live_identity(tmp_path: Path) -> None:
    """The log is the truth: replaying it gives the service's identity after any sequence."""
    sink = RecordingSink(fail_aliases=1)
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.observe_authenticated_response("user-a")
    stitch.login("user-a")
    stitch.login("user-b")
    stitch.clear_distinct_id()
    stitch.logout()
    stitch.observe_authenticated_response("user-c")
    result = replay_dir(tmp_path)
    assert result.error is None
    assert stitch.identity == result.identity


@pytest.mark.parametrize("raw", [bytes(16), b"\xff" * 16, bytes(range(16)), bytes(range(99, 115))])
def test_a_minted_device_id_is_uuid4s_text_of_the_same_random_bytes(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service mints device ids without importing uuid: str(uuid.uuid4()) for its bytes."""
    import uuid

    from idstitch.service import _stitch

    monkeypatch.setattr(os, "urandom", lambda n: raw[:n])
    assert str(uuid.UUID(bytes=raw, version=4)) == _stitch._new_device_id()


@pytest.mark.processes
def test_steady_state_appends_nothing_and_imports_nothing_heavy(tmp_path: Path) -> None:
    """The steady state writes nothing and loads no posthog, pydantic, transitions or orjson."""
    open_stitch(tmp_path).observe_authenticated_response("user-a")
    before = tree(tmp_path)
    script = (
        "import sys\n"
        "from idstitch.machine import IdentityStitch\n"
        f"s = IdentityStitch.open(state_dir={str(tmp_path)!r}, runtime='persistent', env={{}})"
        "\n"
        "s.observe_authenticated_response('user-a')\n"
        "heavy = ('posthog', 'pydantic', 'transitions', 'orjson')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(s.distinct_id, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "user-a []\n" == out
    assert before == tree(tmp_path)


def test_a_foreign_state_file_is_adopted_without_realiasing(tmp_path: Path) -> None:
    """Taking over the seed CLI's telemetry.json keeps its device and counts it as aliased."""
    foreign = {
        "device_id": "7d7f7f7f-0000-4000-8000-000000000001",
        "distinct_id": "user-a",
        "enabled": True,
        "session_id": "s-1",
        "schema_version": 2,
    }
    (tmp_path / "telemetry.json").write_text(json.dumps(foreign))
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    assert (State.ALIASED, foreign["device_id"], "user-a") == (
        stitch.state,
        stitch.device_id,
        stitch.distinct_id,
    )
    stitch.observe_authenticated_response("user-a")
    stitch.observe_authenticated_response("user-b")
    assert [] == sink.aliases
    assert ["import", "response"] == [kind for kind, _ in kinds(tmp_path)]
    assert foreign == json.loads((tmp_path / "telemetry.json.pre-idstitch-1").read_text())
    snapshot = json.loads((tmp_path / "telemetry.json").read_text())
    assert ("idstitch-snapshot", "user-b") == (snapshot["format"], snapshot["distinct_id"])


def test_a_foreign_anonymous_state_file_keeps_its_device_and_aliases_on_first_login(
    tmp_path: Path,
) -> None:
    """A foreign file whose distinct id is its device id is adopted as anonymous."""
    device = "7d7f7f7f-0000-4000-8000-000000000002"
    (tmp_path / "telemetry.json").write_text(
        json.dumps({"device_id": device, "distinct_id": device})
    )
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    assert (State.ANONYMOUS, device) == (stitch.state, stitch.distinct_id)
    stitch.login("user-a")
    assert [RecordedAlias("user-a", device)] == sink.aliases


@pytest.mark.parametrize(
    "device_id", ["", "  ", "null", "None", "Undefined", '"none"', "[object Object]", "d" * 201, 7]
)
def test_a_foreign_file_with_an_unusable_device_id_is_kept_and_not_adopted(
    tmp_path: Path, device_id: object
) -> None:
    """An id PostHog would not merge (R13) is not adopted: a fresh device, the file kept whole."""
    foreign = json.dumps({"device_id": device_id, "distinct_id": "user-a", "enabled": True})
    (tmp_path / "telemetry.json").write_text(foreign)
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    assert (State.ANONYMOUS, 36) == (stitch.state, len(stitch.device_id))
    assert [("genesis", None)] == kinds(tmp_path)
    assert foreign == (tmp_path / "telemetry.json.pre-idstitch-1").read_text()
    stitch.observe_authenticated_response("user-a")
    assert [RecordedAlias("user-a", stitch.device_id)] == sink.aliases


@pytest.mark.parametrize(
    ("content", "suffix"),
    [
        ('{"device_id": "d-legacy", "distinct_id": "user-a"}', ".pre-idstitch"),
        ("{not json", ".corrupt"),
    ],
)
def test_a_state_file_kept_aside_never_replaces_one_kept_before(
    tmp_path: Path, content: str, suffix: str
) -> None:
    """Each start without a log keeps the file it finds under a new name: -1, -2, -3, ..."""
    kept = [f"earlier {number}" for number in (1, 2)]
    (tmp_path / f"telemetry.json{suffix}-1").write_text(kept[0])
    (tmp_path / f"telemetry.json{suffix}-2").write_text(kept[1])
    (tmp_path / "telemetry.json").write_text(content)
    open_stitch(tmp_path, sink=RecordingSink())
    names = [f"telemetry.json{suffix}-{n}" for n in (1, 2, 3)]
    assert [*kept, content] == [(tmp_path / name).read_text() for name in names]


def test_a_foreign_file_that_says_disabled_is_an_opt_out(tmp_path: Path) -> None:
    """The host's own "enabled": false is honoured: nothing is sent and nothing written."""
    (tmp_path / "telemetry.json").write_text(json.dumps({"device_id": "d-1", "enabled": False}))
    before = tree(tmp_path)
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.observe_authenticated_response("user-a")
    assert stitch.opted_out
    assert False is stitch.capture("cli_event")
    assert ([], []) == (sink.aliases, sink.captures)
    assert before == tree(tmp_path)


@pytest.mark.parametrize("spelling", ["1", "true", "TRUE", "yes", "On"])
def test_opt_out_sends_nothing_and_writes_nothing(tmp_path: Path, spelling: str) -> None:
    """R14: DO_NOT_TRACK or the host's variable: no alias, no capture, no file."""
    for env in ({"DO_NOT_TRACK": spelling}, {"MYCLI_TELEMETRY_OFF": spelling}):
        state_dir = tmp_path / spelling / next(iter(env))
        sink = RecordingSink()
        stitch = IdentityStitch.open(
            state_dir=state_dir,
            runtime=Runtime.PERSISTENT,
            sink=sink,
            env=env,
            opt_out_vars=("MYCLI_TELEMETRY_OFF",),
        )
        stitch.observe_authenticated_response("user-a")
        with stitch.command("deploy"):
            pass
        assert (True, False) == (stitch.opted_out, stitch.capture("x"))
        assert ([], []) == (sink.aliases, sink.captures)
        assert "user-a" == stitch.distinct_id
        assert not state_dir.exists()


def test_an_unwritable_state_dir_degrades_to_memory(tmp_path: Path) -> None:
    """R15: when the state dir cannot be created the host still works, in memory, without alias."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sink = RecordingSink()
    stitch = open_stitch(blocker / "state", sink=sink)
    stitch.observe_authenticated_response("user-a")
    assert (State.STAMPED, "user-a", False) == (stitch.state, stitch.distinct_id, stitch.persisting)
    assert [] == sink.aliases
    stitch.logout()
    assert State.RESET == stitch.state


def test_a_corrupt_snapshot_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    """A garbage telemetry.json is kept aside and rebuilt from the log; identity is unchanged."""
    stitch = open_stitch(tmp_path)
    stitch.observe_authenticated_response("user-a")
    (tmp_path / "telemetry.json").write_bytes(b"\xff{not json")
    reopened = open_stitch(tmp_path)
    assert stitch.identity == reopened.identity
    snapshot = json.loads((tmp_path / "telemetry.json").read_text())
    assert ("user-a", stitch.identity.seq) == (snapshot["distinct_id"], snapshot["seq"])


def test_a_missing_snapshot_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    """Without telemetry.json the identity comes back from the log, never regenerated."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    (tmp_path / "telemetry.json").unlink()
    assert stitch.identity == open_stitch(tmp_path).identity


def test_a_damaged_log_is_kept_aside_and_healed_on_a_fresh_device(tmp_path: Path) -> None:
    """A log edited in the middle, no snapshot: it is never rewritten but kept aside byte for
    byte; the new log starts on a fresh device (the records after the edit cannot be trusted,
    and may hide a logout or an alias) and persists from then on."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.login("user-a")
    stitch.logout()
    log = tmp_path / "identity.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"user-a", b"user-z")
    log.write_bytes(b"".join(lines))
    (tmp_path / "telemetry.json").unlink()
    damaged = log.read_bytes()
    reopened = open_stitch(tmp_path, sink=sink)
    assert (True, State.ANONYMOUS) == (reopened.persisting, reopened.state)
    assert reopened.device_id not in (stitch.device_id, sink.aliases[0].device_id)
    reopened.login("user-b")
    reopened.logout()
    assert damaged == (tmp_path / "identity.jsonl.damaged-1").read_bytes()
    assert ["heal", "login", "logout"] == [kind for kind, _ in kinds(tmp_path)]
    assert 2 == len({alias.device_id for alias in sink.aliases}) == len(sink.aliases)


def test_a_log_shorter_than_its_snapshot_heals_from_the_snapshot(tmp_path: Path) -> None:
    """A lost last record (the snapshot saw it): the log is kept aside, never forked, and the
    new log carries the snapshot's identity (it agrees with every record left)."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    log = tmp_path / "identity.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    reopened = open_stitch(tmp_path)
    assert (State.ALIASED, "user-a", True) == (
        reopened.state,
        reopened.distinct_id,
        reopened.persisting,
    )
    reopened.logout()
    assert b"".join(lines[:-1]) == (tmp_path / "identity.jsonl.damaged-1").read_bytes()
    assert ["heal", "logout"] == [kind for kind, _ in kinds(tmp_path)]


def test_a_newer_snapshot_is_never_rewritten(tmp_path: Path) -> None:
    """L8: a snapshot from a newer idstitch is read around, never replaced."""
    open_stitch(tmp_path).login("user-a")
    newer = json.dumps({"format": "idstitch-snapshot", "version": 99, "anything": 1}).encode()
    (tmp_path / "telemetry.json").write_bytes(newer)
    stitch = open_stitch(tmp_path)
    assert ("user-a", False) == (stitch.distinct_id, stitch.persisting)
    stitch.logout()
    assert newer == (tmp_path / "telemetry.json").read_bytes()


def test_ephemeral_runs_start_from_the_state_dir_and_change_no_file(tmp_path: Path) -> None:
    """R2: an ephemeral run reads the device and identity from disk but writes nothing."""
    open_stitch(tmp_path).login("user-a")
    before = tree(tmp_path)
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, runtime=Runtime.EPHEMERAL, sink=sink)
    assert "user-a" == stitch.distinct_id
    stitch.observe_authenticated_response("user-b")
    stitch.logout()
    stitch.login("user-c")
    assert ([], State.STAMPED) == (sink.aliases, stitch.state)
    assert before == tree(tmp_path)


def test_an_ephemeral_audit_log_records_without_aliasing(tmp_path: Path) -> None:
    """R2: with an audit log, an ephemeral run keeps its records there and never aliases."""
    audit = tmp_path / "ci" / "identity-audit.jsonl"
    sink = RecordingSink()
    stitch = open_stitch(tmp_path / "state", runtime=Runtime.EPHEMERAL, sink=sink, audit_log=audit)
    stitch.observe_authenticated_response("user-a")
    records = list(FileLog(audit).records())
    assert [("genesis", "ephemeral"), ("response", "ephemeral")] == [
        (r["kind"], r["runtime"]) for r in records
    ]
    assert [False] == [r["alias"] for r in records if r["kind"] == "response"]
    assert [] == sink.aliases
    assert not (tmp_path / "state").exists()


def test_capture_sends_under_the_current_identity_with_groups(tmp_path: Path) -> None:
    """R1: captures go under the device id before login and the user id after, with groups."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, is_tty=False)
    device = stitch.device_id
    stitch.set_groups(organization="org-1")
    assert stitch.capture("before", {"n": 1})
    stitch.observe_authenticated_response("user-a")
    assert stitch.capture("after", groups={"project": "p-1"})
    defaults = {
        "idstitch_version": idstitch.__version__,
        "arch": os.uname().machine,
        "runtime": "persistent",
        "runtime_reason": "argument",
        "is_tty": False,
    }
    assert [
        RecordedCapture(
            device,
            "before",
            {**defaults, "n": 1, "$device_id": device},
            {"organization": "org-1"},
        ),
        RecordedCapture(
            "user-a",
            "after",
            {**defaults, "$device_id": device},
            {"organization": "org-1", "project": "p-1"},
        ),
    ] == sink.captures


@pytest.mark.parametrize("event", ["$identify", "$create_alias", "$merge_dangerously"])
def test_capture_refuses_the_events_that_merge_persons(
    tmp_path: Path, event: str, caplog: pytest.LogCaptureFixture
) -> None:
    """R3, R10: a host cannot merge persons through capture(); idstitch alone aliases."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.login("user-a")
    with caplog.at_level("WARNING", logger="idstitch"):
        sent = stitch.capture(event, {"alias": "user-b"})
    assert (False, [], 1) == (sent, sink.captures, len(caplog.records))
    assert f"capture({event!r}) refused" in caplog.records[0].getMessage()


def test_command_reports_the_identity_current_at_its_end(tmp_path: Path) -> None:
    """R11: cli_command_executed carries the identity at exit, its exit code, and flushes."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, runtime=Runtime.EPHEMERAL)
    with stitch.command("login"):
        stitch.observe_authenticated_response("user-a")
    with pytest.raises(RuntimeError, match="boom"), stitch.command("deploy"):
        raise RuntimeError("boom")

    @stitch.command("exit")
    def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        leave()
    sent = [
        (c.distinct_id, c.properties["command"], c.properties["exit_code"]) for c in sink.captures
    ]
    assert [("user-a", "login", 0), ("user-a", "deploy", 1), ("user-a", "exit", 3)] == sent
    assert all(isinstance(c.properties["duration_ms"], int) for c in sink.captures)
    assert [2.0, 2.0, 2.0] == sink.flushes


def test_an_async_command_is_reported_when_it_has_run(tmp_path: Path) -> None:
    """R11: a decorated ``async def`` is timed and reported around its awaiting, not its call."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, runtime=Runtime.EPHEMERAL)

    @stitch.command("sync")
    async def sync() -> str:
        await asyncio.sleep(0)
        stitch.observe_authenticated_response("user-a")
        raise SystemExit(3)

    pending = sync()
    assert [] == sink.captures
    with pytest.raises(SystemExit):
        asyncio.run(pending)
    assert [("user-a", "sync", 3)] == [
        (c.distinct_id, c.properties["command"], c.properties["exit_code"]) for c in sink.captures
    ]


@pytest.mark.parametrize(("code", "reported"), [(False, 0), (True, 1), (None, 0), ("bye", 1)])
def test_sys_exit_values_are_reported_as_the_exit_status(
    tmp_path: Path, code: object, reported: int
) -> None:
    """``sys.exit(False)`` exits 0 and ``sys.exit(True)`` 1: the event says so, as an int."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, runtime=Runtime.EPHEMERAL)
    with pytest.raises(SystemExit), stitch.command("run"):
        raise SystemExit(code)
    exit_code = sink.captures[0].properties["exit_code"]
    assert (int, reported) == (type(exit_code), exit_code)


def test_an_integer_user_id_is_taken_as_its_decimal_text(tmp_path: Path) -> None:
    """APIs with numeric ids: 4242 is the user "4242" (as PostHog's client sends it); 0 is R13's."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.observe_authenticated_response(4242)
    stitch.login(4242)
    assert (State.ALIASED, "4242", 1) == (stitch.state, stitch.distinct_id, len(sink.aliases))
    # The last has more digits than str() will write.
    assert [False, False, False] == [stitch.login(bad) for bad in (0, True, 10**5000)]
    assert "4242" == stitch.distinct_id


def test_open_needs_an_app_or_a_state_dir() -> None:
    """Without app= or state_dir= there is nowhere to keep an identity: a TypeError says so."""
    with pytest.raises(TypeError, match="needs app= or state_dir="):
        IdentityStitch.open(env={})


def test_the_default_state_dir_follows_xdg(tmp_path: Path) -> None:
    """app= names a folder under XDG_STATE_HOME (Linux conventions)."""
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    stitch = IdentityStitch.open("mycli", runtime=Runtime.PERSISTENT, env=env)
    assert str(tmp_path / "xdg" / "mycli") == stitch.state_dir
    assert (tmp_path / "xdg" / "mycli" / "identity.jsonl").exists()
    assert 0o700 == os.stat(tmp_path / "xdg" / "mycli").st_mode & 0o777


def test_the_first_run_notice_is_shown_once_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host's notice is printed once per state dir, on a terminal, never in an ephemeral
    run or opted out, and never on a stderr that is no terminal (pytest's capture)."""
    stitch = open_stitch(tmp_path)
    assert not stitch.first_run_notice("we collect usage data")  # stderr: captured, no tty
    assert not (tmp_path / "notice-shown").exists()
    with Terminal() as terminal:
        assert stitch.first_run_notice("we collect usage data", stream=terminal.stream)
        assert not stitch.first_run_notice("we collect usage data", stream=terminal.stream)
        again = open_stitch(tmp_path)
        assert not again.first_run_notice("we collect usage data", stream=terminal.stream)
        assert "we collect usage data\n" == terminal.shown()
        assert [stitch.device_id] == (tmp_path / "notice-shown").read_text().split()
        ci = open_stitch(tmp_path / "ci", runtime=Runtime.EPHEMERAL)
        assert not ci.first_run_notice("we collect usage data", stream=terminal.stream)
        off = open_stitch(tmp_path / "off", env={"DO_NOT_TRACK": "1"})
        assert not off.first_run_notice("we collect usage data", stream=terminal.stream)
        assert "" == terminal.shown()
    assert ("", "") == capsys.readouterr()
    assert not (tmp_path / "ci").exists()


def test_a_notice_that_cannot_be_printed_is_not_marked_shown(tmp_path: Path) -> None:
    """R15: a terminal that hung up (the write fails) breaks nothing; the next run shows it."""
    stitch = open_stitch(tmp_path)
    with Terminal() as gone:
        gone.hang_up()
        assert False is stitch.first_run_notice("we collect usage data", stream=gone.stream)
    assert not (tmp_path / "notice-shown").exists()
    with Terminal() as terminal:
        assert stitch.first_run_notice("we collect usage data", stream=terminal.stream)
        assert "we collect usage data\n" == terminal.shown()


def test_a_snapshot_behind_its_log_is_caught_up_and_healed(tmp_path: Path) -> None:
    """A snapshot older than the log (a crash after an append) folds just the newer records."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink)
    stitch.login("user-a")
    old_snapshot = (tmp_path / "telemetry.json").read_bytes()
    stitch.logout()
    stitch.login("user-b")
    (tmp_path / "telemetry.json").write_bytes(old_snapshot)
    reopened = open_stitch(tmp_path, sink=sink)
    assert stitch.identity == reopened.identity
    healed = json.loads((tmp_path / "telemetry.json").read_text())
    assert (stitch.identity.seq, "user-b") == (healed["seq"], healed["distinct_id"])
    reopened.login("user-b")
    assert 2 == len(sink.aliases)


def test_an_audit_log_is_continued_by_the_next_ephemeral_run(tmp_path: Path) -> None:
    """Two CI runs with the same audit log path: the second continues the first's chain."""
    audit = tmp_path / "audit.jsonl"
    first = open_stitch(tmp_path / "s", runtime=Runtime.EPHEMERAL, audit_log=audit)
    first.observe_authenticated_response("user-a")
    second = open_stitch(tmp_path / "s", runtime=Runtime.EPHEMERAL, audit_log=audit)
    assert first.identity == second.identity
    second.logout()
    result = replay(FileLog(audit).records())
    assert (None, second.identity) == (result.error, result.identity)


def test_click_exit_codes_are_reported(tmp_path: Path) -> None:
    """A click command that exits with ctx.exit(4) is reported with exit code 4."""
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, runtime=Runtime.EPHEMERAL)

    @click.command()
    @click.pass_context
    @stitch.command("deploy")
    def deploy(ctx: Any) -> None:
        ctx.exit(4)

    result = CliRunner().invoke(deploy, [])
    assert 4 == result.exit_code
    assert [("deploy", 4)] == [
        (c.properties["command"], c.properties["exit_code"]) for c in sink.captures
    ]
