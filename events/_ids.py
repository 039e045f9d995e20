"""Which user ids PostHog accepts (rule R13).

PostHog's ingestion refuses to merge persons under a handful of ids that
buggy clients send by accident (``"null"``, ``"anonymous"``, ``"[object
Object]"`` ...), in any case for some and exactly for others, bare or in
quotes. Sending one of them would either be dropped or merge unrelated
people, so idstitch refuses them before anything changes.
"""

from __future__ import annotations

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


def _is_illegal_word(word: str) -> bool:
    return word.lower() in _ILLEGAL_ANY_CASE or word in _ILLEGAL_EXACT


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    return text


def _id_problem(value: object, what: str) -> str | None:
    if not isinstance(value, str):
        return f"a {what} must be a string, not {type(value).__name__}"
    stripped = value.strip()
    if not stripped:
        return f"a {what} must not be blank"
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
    problem = _id_problem(user_id, "user id")
    if problem is not None:
        return problem
    assert isinstance(user_id, str)
    stripped = user_id.strip()
    if _is_illegal_word(stripped) or _is_illegal_word(_unquoted(stripped)):
        return "PostHog treats this id as a placeholder and refuses to merge under it"
    return None


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` unchanged if legal, else raise :class:`IllegalUserIdError`."""
    from ._errors import IllegalUserIdError

    problem = user_id_problem(user_id)
    if problem is not None:
        raise IllegalUserIdError(user_id, problem)
    assert isinstance(user_id, str)
    return user_id


def check_device_id(device_id: object) -> str:
    """Return ``device_id`` if usable (minted ones are UUID v4; adopted ones may differ)."""
    problem = _id_problem(device_id, "device id")
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(device_id, str)
    return device_id
