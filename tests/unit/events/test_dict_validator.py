"""The dict validator (record_problem, and the strict read through it) refuses exactly what
the pydantic models refuse, down to the type of the record itself."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from idstitch.events import START, encode_record, parse_record, record_problem
from idstitch.events._kinds import KINDS
from pydantic import ValidationError
from support.helpers import AT, VALID_FIELDS


@pytest.mark.parametrize("kind", KINDS)
def test_a_record_that_is_a_mapping_but_no_dict_is_refused_as_the_models_refuse_it(
    kind: str,
) -> None:
    """A valid record held in a read-only mapping instead of a dict is refused, as the models'
    strict mode refuses it: the validator is as strict about the record as about its values."""
    _, record = encode_record(START, at=AT, kind=kind, fields=VALID_FIELDS[kind])
    proxy = MappingProxyType(record)
    with pytest.raises(ValidationError):
        parse_record(proxy)  # type: ignore[arg-type]
    expected = ("record: Input should be a valid dictionary", None)
    assert expected == (record_problem(proxy), record_problem(record))  # type: ignore[arg-type]
