"""Which user ids PostHog accepts (rule R13).

PostHog's ingestion refuses to merge persons under a handful of ids that
buggy clients send by accident (``"null"``, ``"anonymous"``, ``"[object
Object]"`` ...), in any case for some and exactly for others, bare or in
quotes. Sending one of them would either be dropped or merge unrelated
people, so idstitch refuses them before anything changes.

Theory of operation. Every id the strict reader validates passes through
here, so the common case is decided by :func:`_plain`: printable ASCII
(which rules out control characters and surrogates), not blank, not too
long, in a handful of C string methods. An id that is not plain (non-ASCII
text, a blank or overlong one) gets the close look of
:func:`_id_problem_closely`, which names what is wrong. A plain user id is
then a placeholder only if its lower-cased form is one of :data:`_SUSPECT`,
or if it is quoted; only those two cases reach the word tests.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from typing import TypeGuard

__all__ = ["MAX_ID_LENGTH", "check_device_id", "check_user_id", "user_id_problem"]

#: PostHog stores distinct ids of at most 200 characters.
MAX_ID_LENGTH = 200

_ILLEGAL_ANY_CASE = frozenset(
    {
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
    }
)
_ILLEGAL_EXACT = frozenset({"null", "none", "None", "NaN", "0", "[object Object]"})


#: Every placeholder in lower case: a plain, unquoted id whose stripped,
#: lower-cased form is not in here is no placeholder, in any case.
_SUSPECT = _ILLEGAL_ANY_CASE | {word.lower() for word in _ILLEGAL_EXACT}
_QUOTES = "'\""


def _plain(value: object) -> TypeGuard[str]:
    """Printable ASCII, not blank, at most :data:`MAX_ID_LENGTH` long: fine as a device id."""
    return (
        type(value) is str
        and value.isascii()
        and value.isprintable()
        and 0 < len(value) <= MAX_ID_LENGTH
        and not value.isspace()
    )


def _plain_user_id(value: object) -> TypeGuard[str]:
    """A plain id that is neither a placeholder nor quoted: fine as a user id."""
    if not _plain(value):
        return False
    stripped = value.strip()
    return stripped.lower() not in _SUSPECT and stripped[0] not in _QUOTES


def _is_illegal_word(word: str) -> bool:
    return word.lower() in _ILLEGAL_ANY_CASE or word in _ILLEGAL_EXACT


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        return text[1:-1].strip()
    return text


def _invisible(text: str) -> bool:
    """Whether ``text`` shows nothing: only spaces and format characters (U+200B, U+FEFF...).

    Reached only for ids that are not plain ASCII, so ``unicodedata`` loads only for them.
    """
    import unicodedata

    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def _id_problem_closely(value: object, what: str) -> str | None:
    if not isinstance(value, str):
        return f"a {what} must be a string, not {type(value).__name__}"
    stripped = value.strip()
    if not stripped:
        return f"a {what} must not be blank"
    if _invisible(stripped):
        return f"a {what} must not be made only of invisible characters (such as U+200B)"
    if len(value) > MAX_ID_LENGTH:
        return f"a {what} is at most {MAX_ID_LENGTH} characters, this one has {len(value)}"
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
        return f"a {what} must not contain control characters"
    if any(0xD800 <= ord(c) < 0xE000 for c in value):
        # A lone surrogate (from a mis-decoded byte) cannot be written as UTF-8.
        return f"a {what} must be valid Unicode text (it holds a lone surrogate)"
    return None


def user_id_problem(user_id: object) -> str | None:
    """Why ``user_id`` is illegal, or ``None`` when PostHog accepts it."""
    if _plain_user_id(user_id):
        return None
    problem = _id_problem_closely(user_id, "user id")
    if problem is not None:
        return problem
    assert isinstance(user_id, str)
    stripped = user_id.strip()
    unquoted = _unquoted(stripped)
    if _invisible(unquoted):
        return "a user id must not be blank (this one is a quoted blank)"
    if _is_illegal_word(stripped) or _is_illegal_word(unquoted):
        return "PostHog treats this id as a placeholder and refuses to merge under it"
    return None


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` unchanged if legal, else raise :class:`IllegalUserIdError`."""
    if _plain_user_id(user_id):
        return user_id
    problem = user_id_problem(user_id)
    if problem is not None:
        from ._errors import IllegalUserIdError

        raise IllegalUserIdError(user_id, problem)
    assert isinstance(user_id, str)
    return user_id


def check_device_id(device_id: object) -> str:
    """Return ``device_id`` if usable (minted ones are UUID v4; adopted ones may differ)."""
    if _plain(device_id):
        return device_id
    problem = _id_problem_closely(device_id, "device id")
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(device_id, str)
    return device_id
