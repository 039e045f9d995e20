"""The user's telemetry choice in the service: precedence, the API, the switch a recorded
disable makes once the dir was read, and where the choice is written (real state dirs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from idstitch.adapters.sinks import RecordingSink, SpoolSink
from idstitch.delivery._spool import segment_names
from idstitch.machine import IdentityStitch, State, TelemetryStatus
from idstitch.service import Storage
from idstitch.store import read_snapshot
from support.service import log_records, open_stitch

AT_DAY = "2026-11-27"


def _kinds(state_dir: Path) -> list[str]:
    return [record["kind"] for record in log_records(state_dir)]


def _recorded(state_dir: Path, choice: str | None) -> None:
    """Leave ``choice`` as the state dir's recorded consent (``None``: none recorded)."""
    stitch = open_stitch(state_dir)
    if choice == "enabled":
        stitch.enable_telemetry()
    elif choice == "disabled":
        stitch.disable_telemetry()


@pytest.mark.parametrize("consent", [None, "enabled", "disabled"])
@pytest.mark.parametrize(
    ("env", "by_env"),
    [({}, None), ({"DO_NOT_TRACK": "1"}, "DO_NOT_TRACK"), ({"MYCLI_OFF": "yes"}, "MYCLI_OFF")],
)
def test_the_environment_wins_over_the_recorded_consent_which_wins_over_the_default(
    tmp_path: Path, consent: str | None, env: dict[str, str], by_env: str | None
) -> None:
    """Every combination: an opt-out variable decides first, then the recorded choice, then
    the default (enabled); the run sends only when the status says enabled."""
    _recorded(tmp_path, consent)
    sink = RecordingSink()
    stitch = open_stitch(tmp_path, sink=sink, env=env, opt_out_vars=("MYCLI_OFF",))
    status = stitch.telemetry_status()
    stitch.capture("ran")
    if by_env is not None:
        expected = (False, by_env)
    elif consent is not None:
        expected = (consent == "enabled", "consent")
    else:
        expected = (True, "default")
    assert (*expected, consent) == (status.enabled, status.decided_by, status.consent)
    assert (status.enabled, not status.enabled) == (len(sink.captures) == 1, stitch.opted_out)


def test_disable_records_one_consent_and_again_writes_nothing(tmp_path: Path) -> None:
    """disable appends one consent record (the snapshot carries it); a second disable changes
    no byte; enable appends one more; each returns the status after it."""
    stitch = open_stitch(tmp_path)
    first = stitch.disable_telemetry()
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    again = stitch.disable_telemetry()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    enabled = stitch.enable_telemetry()
    records = log_records(tmp_path)
    snapshot = read_snapshot(tmp_path / "telemetry.json").data
    expected_first = TelemetryStatus(
        enabled=False,
        decided_by="consent",
        consent="disabled",
        recorded_at=records[1]["at"],
        recorded=True,
    )
    assert (expected_first, expected_first, files) == (first, again, after)
    assert ["genesis", "consent", "consent"] == [r["kind"] for r in records]
    assert ["disabled", "enabled"] == [r["telemetry"] for r in records[1:]]
    assert (True, "consent", records[2]["at"]) == (
        enabled.enabled,
        enabled.decided_by,
        enabled.recorded_at,
    )
    assert (2, "enabled", records[2]["at"]) == (
        snapshot["version"],
        snapshot["consent"],
        snapshot["consent_at"],
    )


def test_a_run_that_finds_consent_disabled_is_an_opted_out_run(tmp_path: Path) -> None:
    """R14 by consent: nothing sent, a login not recorded, but a logout still forgets the user
    the dir holds; the storage says why."""
    first = open_stitch(tmp_path)
    first.login("user-a")
    first.disable_telemetry()
    sink = RecordingSink()
    run = open_stitch(tmp_path, sink=sink)
    sent = run.capture("ran")
    run.login("user-b")
    before_logout = _kinds(tmp_path)
    run.logout()
    expected = (False, True, Storage.READ_ONLY, "telemetry disabled by the user's recorded choice")
    assert expected == (sent, run.opted_out, run.storage, run.storage_reason)
    assert ([], []) == (sink.captures, sink.aliases)
    assert ["genesis", "login", "consent"] == before_logout
    assert ["genesis", "login", "consent", "logout"] == _kinds(tmp_path)
    assert None is open_stitch(tmp_path).user_id


def test_disable_takes_effect_at_once_and_empties_the_spool(tmp_path: Path) -> None:
    """Events spooled before the disable (not sent yet) are deleted; later captures are not
    queued; the sink sends nothing more from this process."""
    sink = SpoolSink("phc_test", host="http://127.0.0.1:9", env={}, delivery="in_process")
    stitch = IdentityStitch.open(state_dir=tmp_path, runtime="persistent", sink=sink, env={})
    queued = [stitch.capture("one"), stitch.capture("two")]
    spooled = segment_names(str(tmp_path / "spool"))
    stitch.disable_telemetry()
    later = stitch.capture("three")
    assert ([True, True], 1, False) == (queued, len(spooled), later)
    assert [] == segment_names(str(tmp_path / "spool"))


def test_enable_in_a_run_the_consent_switched_off_sends_again(tmp_path: Path) -> None:
    """A run opened with consent disabled sends nothing; after enable_telemetry() it sends
    through the host's sink again and keeps the dir healthy."""
    _recorded(tmp_path, "disabled")
    sink = RecordingSink()
    run = open_stitch(tmp_path, sink=sink)
    off = run.capture("before")
    status = run.enable_telemetry()
    on = run.capture("after")
    sent = [(c.distinct_id, c.event, c.properties["$device_id"]) for c in sink.captures]
    assert (False, True, True) == (off, status.enabled, on)
    assert ([(run.device_id, "after", run.device_id)], Storage.HEALTHY, False) == (
        sent,
        run.storage,
        run.opted_out,
    )


def test_an_ephemeral_run_records_the_choice_in_the_state_dir(tmp_path: Path) -> None:
    """The choice is the user's instruction: an ephemeral run (which writes nothing of its
    own) records it in the state dir, and a later run of any kind reads it."""
    open_stitch(tmp_path).login("user-a")
    ephemeral = open_stitch(tmp_path, runtime="ephemeral")
    status = ephemeral.disable_telemetry()
    later = open_stitch(tmp_path, runtime="ephemeral")
    assert (False, True) == (status.enabled, status.recorded)
    assert ["genesis", "login", "consent"] == _kinds(tmp_path)
    assert ("disabled", True, "user-a") == (
        later.telemetry_status().consent,
        later.opted_out,
        later.user_id,
    )


def test_an_opted_out_run_records_the_choice_and_says_the_variable_wins(tmp_path: Path) -> None:
    """DO_NOT_TRACK set: enable is still recorded (the dir gets the record), and the status
    says the variable decides; without it, the next run sends."""
    open_stitch(tmp_path)
    _recorded(tmp_path, "disabled")
    opted = open_stitch(tmp_path, env={"DO_NOT_TRACK": "true"})
    status = opted.enable_telemetry()
    later = open_stitch(tmp_path).telemetry_status()
    assert (False, "DO_NOT_TRACK", "enabled", True) == (
        status.enabled,
        status.decided_by,
        status.consent,
        status.recorded,
    )
    assert (True, "consent") == (later.enabled, later.decided_by)


def test_a_heal_carries_the_consent_into_the_new_log(tmp_path: Path) -> None:
    """The log is damaged before the consent: the new log starts with a heal and the consent
    right after it, so the choice outlives the damage."""
    stitch = open_stitch(tmp_path)
    stitch.login("user-a")
    stitch.enable_telemetry()
    log = tmp_path / "identity.jsonl"
    data = bytearray(log.read_bytes())
    data[data.index(b'"login"') + 2] ^= 0x01  # the login's kind: the chain breaks there
    log.write_bytes(bytes(data))
    healed = open_stitch(tmp_path)
    healed.check()
    records = log_records(tmp_path)
    assert (["heal", "consent"], "enabled") == (
        [r["kind"] for r in records],
        records[-1]["telemetry"],
    )
    assert "enabled" == open_stitch(tmp_path).telemetry_status().consent


_DEFAULT = (
    "Telemetry is enabled (the default; no choice was recorded): "
    "mycli telemetry disable or DO_NOT_TRACK=1 turns it off."
)
_OFF = (
    f"Telemetry is disabled: you turned it off on {AT_DAY} "
    "(mycli telemetry enable turns it back on)."
)
_ON_NO_APP = (
    f"Telemetry is enabled: you turned it on on {AT_DAY} "
    "(the telemetry disable command turns it off)."
)
_ENV_WINS = (
    "Telemetry is disabled: DO_NOT_TRACK is set in the environment, which wins over any "
    f"choice recorded (you enabled it on {AT_DAY})."
)


@pytest.mark.parametrize(
    ("consent", "env", "app", "text"),
    [
        (None, {}, "mycli", _DEFAULT),
        ("disabled", {}, "mycli", _OFF),
        ("enabled", {}, None, _ON_NO_APP),
        ("enabled", {"DO_NOT_TRACK": "1"}, "mycli", _ENV_WINS),
    ],
)
def test_describe_says_whether_and_why_in_plain_words(
    tmp_path: Path, consent: str | None, env: dict[str, str], app: str | None, text: str
) -> None:
    """describe(): one or two sentences naming what decided, the day, and the command."""
    _recorded(tmp_path, consent)
    stitch = open_stitch(tmp_path, env=env)
    stitch._app = app
    assert text == stitch.telemetry_status().describe()


def test_a_choice_that_cannot_be_saved_says_so(tmp_path: Path) -> None:
    """No state dir to write to (its place is a file's): the choice holds in memory, and
    describe says so."""
    (tmp_path / "file").write_text("not a dir")
    stitch = open_stitch(tmp_path / "file" / "state")
    status = stitch.disable_telemetry()
    assert (False, False, "disabled", State.ANONYMOUS) == (
        status.enabled,
        status.recorded,
        status.consent,
        stitch.state,
    )
    assert status.describe().endswith(
        "Your choice could not be saved, so it holds for this run only."
    )
