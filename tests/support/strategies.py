"""Shared hypothesis strategies for idstitch's tests.

The illegal user ids are restated here from rule R13 of the identity rules
(not imported from ``idstitch.events``), so the tests check the code against
the rule rather than against itself.

Import it as ``from strategies import ...`` (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from hypothesis import strategies as st
from idstitch.events import RUNTIMES as _RUNTIMES
from idstitch.events import Checkpoint
from idstitch.events._codec import format_time
from idstitch.events._kinds import CONSENTS
from idstitch.machine import USER_EVENTS

__all__ = [
    "FIELD_STRATEGIES",
    "ILLEGAL_ANY_CASE",
    "ILLEGAL_EXACT",
    "KIND_STRATEGIES",
    "OPENING_KINDS",
    "RUNTIMES",
    "LifeStep",
    "RecordSpec",
    "any_case",
    "blank_ids",
    "checkpoints",
    "control_char_ids",
    "device_ids",
    "drop_reasons",
    "examples",
    "fields_for",
    "illegal_user_ids",
    "kept_names",
    "legal_user_ids",
    "life_steps",
    "log_openings",
    "overlong_ids",
    "pids",
    "placeholder_ids",
    "quoted",
    "quoted_placeholder_ids",
    "record_sequences",
    "record_specs",
    "record_times",
    "spec_says_illegal",
]

#: The Hypothesis profile of this run (tests/conftest.py): ``ci`` under ``make test``.
PROFILE = os.environ.get("IDSTITCH_HYPOTHESIS", "default")


def examples(count: int) -> int:
    """A test's example count: ten times over when ``make explore`` searches afresh, a fifth
    (ten at least) in ``make check``'s quick loop."""
    if PROFILE == "explore":
        return count * 10
    if PROFILE == "check":
        return max(10, count // 5)
    return count


#: R13: refused in any case.
ILLEGAL_ANY_CASE: tuple[str, ...] = (
    "anonymous",
    "guest",
    "distinct_id",
    "distinctid",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
)
#: R13: refused exactly as written (``NULL`` or ``nan`` are legal).
ILLEGAL_EXACT: tuple[str, ...] = ("null", "none", "None", "NaN", "0", "[object Object]")

RUNTIMES: tuple[str, ...] = _RUNTIMES

_MAX_ID = 200


class RecordSpec(NamedTuple):
    """What a caller passes to ``append``: the kind, its fields and the time."""

    kind: str
    fields: Mapping[str, object]
    at: str


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    return text


def spec_says_illegal(user_id: str) -> bool:
    """Whether R13 refuses ``user_id`` by its words: a listed word or blank, bare or quoted once."""
    words = {user_id.strip(), _unquote(user_id.strip())}
    return any(_invisible(w) or w.lower() in ILLEGAL_ANY_CASE or w in ILLEGAL_EXACT for w in words)


def _invisible(word: str) -> bool:
    """Blank to a person: only spaces and format characters (U+200B, U+FEFF ...), or nothing."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in word)


# Printable text: no control characters (Cc), no lone surrogates (Cs).
_id_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))


def _text_ids(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(_id_chars, min_size=min_size, max_size=max_size).filter(
        lambda s: bool(s.strip()) and not spec_says_illegal(s)
    )


def legal_user_ids() -> st.SearchStrategy[str]:
    """User ids R13 accepts: UUIDs, e-mail-like ids, and printable text of 1..200 chars."""
    return st.one_of(
        st.uuids().map(str),
        st.emails().filter(lambda s: len(s) <= _MAX_ID),
        st.from_regex(r"\A(user|acct)-[0-9]{1,12}\Z"),
        _text_ids(1, _MAX_ID),
    )


def device_ids() -> st.SearchStrategy[str]:
    """Device ids: minted UUID v4s, or adopted ids of any printable text."""
    return st.one_of(st.uuids(version=4).map(str), _text_ids(1, _MAX_ID))


def any_case(word: str) -> st.SearchStrategy[str]:
    """``word`` with each letter upper- or lower-cased at random."""
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(
            c.upper() if f else c.lower() for c, f in zip(word, flips, strict=True)
        )
    )


def quoted(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``words`` wrapped once in single or double quotes, with optional padding."""
    pad = st.sampled_from(["", " ", "  "])
    return st.tuples(pad, st.sampled_from(["'", '"']), pad, words, pad, pad).map(
        lambda t: f"{t[0]}{t[1]}{t[2]}{t[3]}{t[4]}{t[1]}{t[5]}"
    )


def blank_ids() -> st.SearchStrategy[str]:
    """Empty or whitespace-only ids."""
    return st.text(st.sampled_from(" \t\n\r\u00a0\u2003\u3000"), max_size=8)


def placeholder_ids() -> st.SearchStrategy[str]:
    """R13's placeholder words: the any-case list in any case, the exact list as is, padded."""
    words = st.one_of(
        st.sampled_from(ILLEGAL_ANY_CASE).flatmap(any_case),
        st.sampled_from(ILLEGAL_EXACT),
    )
    pad = st.sampled_from(["", " ", "\u00a0"])
    return st.tuples(pad, words, pad).map("".join)


def quoted_placeholder_ids() -> st.SearchStrategy[str]:
    """R13's placeholder words in quotes: ``"null"``, ``'Anonymous'``, ``" guest "``."""
    return quoted(
        st.one_of(
            st.sampled_from(ILLEGAL_ANY_CASE).flatmap(any_case),
            st.sampled_from(ILLEGAL_EXACT),
        )
    )


def control_char_ids() -> st.SearchStrategy[str]:
    """Otherwise legal ids with a C0 or C1 control character inside."""
    control = st.one_of(
        st.integers(0, 31).map(chr),
        st.integers(0x7F, 0x9F).map(chr),
    )
    return st.tuples(st.text(_id_chars, max_size=20), control, st.text(_id_chars, max_size=20)).map(
        lambda t: f"x{t[0]}{t[1]}{t[2]}"
    )


def overlong_ids() -> st.SearchStrategy[str]:
    """Ids longer than PostHog's 200 characters."""
    return st.text(st.sampled_from("abcXYZ019-_"), min_size=_MAX_ID + 1, max_size=_MAX_ID + 60)


def illegal_user_ids() -> st.SearchStrategy[str]:
    """Every kind of user id R13 refuses."""
    return st.one_of(
        blank_ids(),
        placeholder_ids(),
        quoted_placeholder_ids(),
        quoted(st.sampled_from(["", " ", "\t"])),  # a quoted blank: '""', "' '"
        control_char_ids(),
        overlong_ids(),
        invisible_ids(),
    )


def invisible_ids() -> st.SearchStrategy[str]:
    """Ids made only of invisible characters (zero-width spaces, BOMs, joiners), bare or quoted."""
    bare = st.text(st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\u00ad "), min_size=1, max_size=6)
    return st.one_of(bare, quoted(bare))


def pids() -> st.SearchStrategy[int]:
    """Process ids (non-negative, within what the log's JSON integers hold)."""
    return st.integers(min_value=0, max_value=2**31 - 1)


def record_times() -> st.SearchStrategy[str]:
    """Record times as the log writes them, from aware datetimes in any fixed offset."""
    offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    return st.datetimes(
        # hypothesis takes naive bounds and draws the zone separately
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.one_of(st.just(UTC), offsets),
    ).map(format_time)


def checkpoints() -> st.SearchStrategy[Checkpoint]:
    """Any position in some log: a ``seq``, a 32-hex-digit hash and a byte offset."""
    return st.builds(
        Checkpoint,
        st.integers(min_value=0, max_value=10**9),
        st.text("0123456789abcdef", min_size=32, max_size=32),
        st.integers(min_value=0, max_value=10**12),
    )


def _optional_user_ids() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), legal_user_ids())


def kept_names() -> st.SearchStrategy[str]:
    """Names of a damaged log kept aside: a file name, with no ``/`` or NUL, not ``.`` or ``..``."""
    chars = st.characters(codec="utf-8", exclude_characters="/\0")  # utf-8: no surrogates
    return st.one_of(
        st.integers(1, 10**6).map(lambda n: f"identity.jsonl.damaged-{n}"),
        st.text(chars, min_size=1, max_size=40).filter(lambda s: s not in {".", ".."}),
    )


def drop_reasons() -> st.SearchStrategy[str]:
    """Why an alias was dropped: the sender's words, or any line of up to 200 characters with
    no control character (C0, DEL, C1) and not blank."""
    chars = st.characters(codec="utf-8", exclude_categories=["Cc"])
    return st.one_of(
        st.sampled_from(["expired", "refused: HTTP 400", "refused: HTTP 413", "spool full"]),
        st.text(chars, min_size=1, max_size=200).filter(lambda s: bool(s.strip(" "))),
    )


def _runtimes() -> st.SearchStrategy[str]:
    return st.sampled_from(RUNTIMES)


#: kind -> (field name, strategy of its values), in the order the log format lists them.
FIELD_STRATEGIES: dict[str, tuple[tuple[str, st.SearchStrategy[object]], ...]] = {
    "genesis": (("device_id", device_ids()), ("runtime", _runtimes())),
    "import": (
        ("device_id", device_ids()),
        ("user_id", _optional_user_ids()),
        ("aliased", st.booleans()),
    ),
    "response": (
        ("device_id", device_ids()),
        ("user_id", legal_user_ids()),
        ("runtime", _runtimes()),
        ("pid", pids()),
        ("alias", st.booleans()),
    ),
    "login": (
        ("device_id", device_ids()),
        ("user_id", legal_user_ids()),
        ("runtime", _runtimes()),
        ("pid", pids()),
        ("alias", st.booleans()),
    ),
    "enqueue_failure": (
        ("device_id", device_ids()),
        ("user_id", legal_user_ids()),
        ("pid", pids()),
    ),
    "clear": (("device_id", device_ids()), ("pid", pids())),
    "logout": (("device_id", device_ids()), ("new_device_id", device_ids()), ("pid", pids())),
    "heal": (
        ("device_id", device_ids()),
        ("user_id", _optional_user_ids()),
        ("linked_user", _optional_user_ids()),
        ("kept", kept_names()),
        ("pid", pids()),
    ),
    "alias_dropped": (
        ("device_id", device_ids()),
        ("user_id", legal_user_ids()),
        ("reason", drop_reasons()),
        ("pid", pids()),
    ),
    "consent": (
        ("device_id", device_ids()),
        ("telemetry", st.sampled_from(CONSENTS)),
        ("pid", pids()),
    ),
}


def _fields(
    pairs: tuple[tuple[str, st.SearchStrategy[object]], ...],
) -> st.SearchStrategy[dict[str, object]]:
    names = [name for name, _ in pairs]
    return st.tuples(*(values for _, values in pairs)).map(
        lambda drawn: dict(zip(names, drawn, strict=True))
    )


#: kind -> the strategy of its valid fields (a dict in the format's key order). A
#: heal's user and linked user are drawn related (equal half the time), so every
#: guard of its row is drawn.
KIND_STRATEGIES: dict[str, st.SearchStrategy[dict[str, object]]] = {
    kind: _fields(pairs) for kind, pairs in FIELD_STRATEGIES.items()
}
KIND_STRATEGIES["heal"] = st.tuples(KIND_STRATEGIES["heal"], st.booleans()).map(
    lambda t: {**t[0], "linked_user": t[0]["user_id"]} if t[1] else t[0]
)

#: The kinds that start a log.
OPENING_KINDS: tuple[str, ...] = ("genesis", "import", "heal")


def fields_for(kind: str) -> st.SearchStrategy[dict[str, object]]:
    """Valid fields of a ``kind`` record, in the order the format lists them."""
    return KIND_STRATEGIES[kind]


def record_specs(kinds: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[RecordSpec]:
    """One valid record to append, of any kind (or of one drawn from ``kinds``)."""
    chosen = kinds if kinds is not None else st.sampled_from(tuple(KIND_STRATEGIES))
    return chosen.flatmap(
        lambda kind: st.builds(RecordSpec, st.just(kind), fields_for(kind), record_times())
    )


def log_openings() -> st.SearchStrategy[RecordSpec]:
    """The first record of a log: a genesis, an import or a heal."""
    return record_specs(st.sampled_from(OPENING_KINDS))


def record_sequences(
    *, min_size: int = 1, max_size: int = 6
) -> st.SearchStrategy[list[RecordSpec]]:
    """A list of valid records to append in order (field values, not identity semantics).

    Half the lists start as a log does (a genesis, an import or a heal).
    """
    rest = st.lists(record_specs(), min_size=max(min_size - 1, 0), max_size=max_size - 1)
    anything = st.lists(record_specs(), min_size=min_size, max_size=max_size)
    opened = st.tuples(log_openings(), rest).map(lambda t: [t[0], *t[1]])
    return st.one_of(anything, opened) if max_size >= 1 else anything


#: One event of a life: ``(event, user or None, runtime)``; for an ``alias_dropped``,
#: ``(event, user, device)`` with the device ``current`` or ``earlier``; for a ``consent``,
#: ``(event, choice, runtime)`` (see ``helpers.drive_life``).
LifeStep = tuple[str, str | None, str]


def life_steps(*, max_size: int = 12) -> st.SearchStrategy[list[LifeStep]]:
    """Events to drive through the machine after a log's first record, users from a small pool
    so that the same user comes back (the ``linked`` guard) and another one arrives (``other``),
    and drops of an alias of the device in force or of the life's first device, standing or
    not (so that a device dropped is aliased again, and a drop of nothing is refused)."""
    users = st.sampled_from(["user-a", "user-b", "user-c"])
    user_event = st.tuples(st.sampled_from(USER_EVENTS), users, st.sampled_from(RUNTIMES))
    plain = st.tuples(
        st.sampled_from(["clear", "logout", "enqueue_failure"]), st.none(), st.just("persistent")
    )
    drop = st.tuples(
        st.just("alias_dropped"), st.none() | users, st.sampled_from(["current", "earlier"])
    )
    consent = st.tuples(st.just("consent"), st.sampled_from(CONSENTS), st.just("persistent"))
    return st.lists(st.one_of(user_event, plain, drop, consent), max_size=max_size)
