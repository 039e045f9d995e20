"""A closed set of named strings, like ``enum.StrEnum`` without importing ``enum``.

``enum`` brings ``functools``, ``collections``, ``operator`` and more
along: about 5 ms of a CLI's start, half the whole budget of bar B2.
States and runtimes need much less: members that *are* their strings
(equal to them, hashed like them, written as them), looked up by value,
iterated in order, and typed for mypy. Each member is declared as a
``ClassVar`` of its own class and its value is its name in lower case::

    class Color(Names):
        RED: ClassVar[Color]

    Color.RED == "red" and Color("red") is Color.RED and list(Color) == [Color.RED]
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import ClassVar, Self, TypeVar

    _N = TypeVar("_N")

__all__ = ["Names"]


class _NamesType(type):
    """Iterating a :class:`Names` class gives its members, in declaration order."""

    def __iter__(cls: type[_N]) -> Iterator[_N]:
        return iter(vars(cls)["_members"].values())

    def __len__(cls) -> int:
        return len(vars(cls)["_members"])


class Names(str, metaclass=_NamesType):
    """Base of a set of named strings; see the module docstring."""

    __slots__ = ()
    _members: ClassVar[dict[str, Names]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        members: dict[str, Names] = {}
        for name, declared in vars(cls).get("__annotations__", {}).items():
            if name.isupper() and "ClassVar" in str(declared):
                member = str.__new__(cls, name.lower())
                setattr(cls, name, member)
                members[str(member)] = member
        cls._members = members

    def __new__(cls, value: str) -> Self:
        """The member whose value is ``value``; ``ValueError`` if there is none."""
        member = cls._members.get(value) if isinstance(value, str) else None
        if member is None:
            raise ValueError(f"{value!r} is not a valid {cls.__name__}")
        assert isinstance(member, cls)  # for mypy: the members of a class are its instances
        return member

    @property
    def value(self) -> str:
        """The member as a plain ``str``."""
        return str.__str__(self)

    @property
    def name(self) -> str:
        """The member's name (its value in upper case)."""
        return str.__str__(self).upper()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {self.value!r}>"

    def __reduce__(self) -> tuple[type[Self], tuple[str]]:
        return type(self), (self.value,)
