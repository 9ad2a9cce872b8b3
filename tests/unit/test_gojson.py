"""Unit tests for containertracker.gojson (the field tables the models declare and their codec).

The byte-exact encodings of each model are tested in test_models.py through the models' API.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from containertracker.models import JobInfo, JobTemplate, Machine


@pytest.mark.parametrize("model", [JobTemplate, JobInfo, Machine])
def test_every_model_field_is_in_its_go_table_once(
    model: type[JobTemplate | JobInfo | Machine],
) -> None:
    """A model's Go struct table names each of its fields exactly once (none left off the wire)."""
    struct = model._go
    names = [field.name for field in struct.fields]
    assert sorted(names) == sorted(model.model_fields)
    assert struct.name == model.__name__


@pytest.mark.parametrize(
    ("decode", "text"),
    [
        (JobInfo.from_go_json, '{"state":"running"}'),
        (Machine.from_go_json, '{"architecture":"x64"}'),
        (Machine.from_go_json, '{"os":true}'),
    ],
)
def test_enum_of_wrong_json_type_is_an_error(decode: Callable[[str], object], text: str) -> None:
    """An enum field holding a non-integer is a ValueError, not the out-of-range fallback."""
    with pytest.raises(ValueError, match="expected an integer"):
        decode(text)


def test_out_of_range_enum_reads_as_fallback() -> None:
    """An integer the enum does not define reads as the fallback, as the Go side does."""
    assert JobInfo.from_go_json('{"state":99}').state.name == "UNDETERMINED"
    assert Machine.from_go_json('{"architecture":99,"os":99}').os.name == "OTHER_OS"
