"""The package's lazy exports (PEP 562): a name is imported from its home module on first
access, and is that module's very object."""

from __future__ import annotations

import idstitch.events
from idstitch.events import _codec, _models


def test_the_hook_serves_each_name_from_its_home_module() -> None:
    """The package's ``__getattr__`` gives, for each name it serves, the object its home module
    defines (the first access, which imports the module, included)."""
    homes = {
        "START": _codec.START,
        "RecordReader": _codec.RecordReader,
        "encode_record": _codec.encode_record,
        "Response": _models.Response,
        "parse_record": _models.parse_record,
    }
    assert homes == {name: idstitch.events.__getattr__(name) for name in homes}
