"""Small frozen value objects without ``dataclasses``.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis`` and
``tokenize``): several milliseconds of every ``idstitch`` run, more than
the replay of a small log. The result objects of the audit and of the
service's reports (both on the audit tool's start path) are few and
small, so each declares its fields as ``__slots__`` (annotated in the
class body) and sets them in its ``__init__`` with :func:`freeze`;
:class:`Frozen` makes them read-only, equal and hashed by value, and shown
by field.
"""

from __future__ import annotations

__all__ = ["Frozen", "freeze"]


class Frozen:
    """A value whose fields are its class's ``__slots__``, set once by :func:`freeze`."""

    __slots__ = ()

    def __init_subclass__(cls) -> None:
        if "__slots__" not in cls.__dict__:  # its fields would be missing, silently
            raise TypeError(f"{cls.__name__} must declare its fields as __slots__")

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.__slots__
        return names

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({shown})"


def freeze(value: Frozen, fields: dict[str, object]) -> None:
    """Set each of ``value``'s slots from ``fields`` (its ``__init__``'s ``locals()``)."""
    for name in value._names():
        object.__setattr__(value, name, fields[name])
