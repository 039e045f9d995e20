"""Lazy package exports (PEP 562), so that importing a package costs only what is used."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, tuple[str, ...]]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports each name from its home submodule on first access.

    ``homes`` maps a relative submodule (``"._codec"``) to the names it provides.
    """
    home = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> object:  # noqa: N807 - it is the module hook
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import sys

        # ``__import__`` rather than ``importlib.import_module``: the ``importlib``
        # package (and the ``warnings`` it imports) would cost every start 0.4 ms.
        full = package + module
        __import__(full)
        value = getattr(sys.modules[full], name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
