"""Argument validation: what a model (and a person) reads when a tool call is unusable."""

from __future__ import annotations

import pytest

from toolsapp.validation import ToolArgumentsError, arguments_check, arguments_parse, schema_check

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "units": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def test_it_decodes_a_json_object_of_arguments():
    assert arguments_parse('{"city": "Oslo", "days": 3}') == {"city": "Oslo", "days": 3}


def test_it_treats_missing_arguments_as_an_empty_object():
    assert arguments_parse("") == {}
    assert arguments_parse(None) == {}


def test_it_passes_an_already_decoded_object_through():
    assert arguments_parse({"city": "Oslo"}) == {"city": "Oslo"}


def test_it_rejects_arguments_that_are_not_json_and_says_where():
    with pytest.raises(ToolArgumentsError) as info:
        arguments_parse('{"city": "Oslo"')
    message = str(info.value)
    assert "not valid JSON" in message
    assert "line 1 column" in message
    assert '{"city": "Oslo"' in message


def test_it_rejects_json_that_is_not_an_object():
    with pytest.raises(ToolArgumentsError, match="must be a JSON object, got list"):
        arguments_parse('["Oslo"]')


def test_it_accepts_arguments_that_fit_the_schema():
    arguments_check(schema=SCHEMA, arguments={"city": "Oslo", "days": 3, "units": "c"})


def test_it_rejects_arguments_that_break_the_schema():
    with pytest.raises(ToolArgumentsError) as info:
        arguments_check(schema=SCHEMA, arguments={"city": "Oslo", "days": "three"})
    message = str(info.value)
    assert message.startswith("arguments break the tool's schema")
    assert "days: 'three' is not of type 'integer'" in message


def test_it_names_a_missing_required_argument():
    with pytest.raises(ToolArgumentsError, match="'city' is a required property"):
        arguments_check(schema=SCHEMA, arguments={"days": 2})


def test_it_names_an_unexpected_argument():
    with pytest.raises(ToolArgumentsError, match="'tz' was unexpected"):
        arguments_check(schema=SCHEMA, arguments={"city": "Oslo", "tz": 5})


def test_it_lists_every_problem_with_its_path():
    with pytest.raises(ToolArgumentsError) as info:
        arguments_check(schema=SCHEMA, arguments={"city": "", "days": 99, "units": "kelvin"})
    message = str(info.value)
    assert "city:" in message
    assert "days: 99 is greater than the maximum of 14" in message
    assert "units: 'kelvin' is not one of ['c', 'f']" in message


def test_it_caps_a_long_list_of_problems_and_counts_the_rest():
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "integer"} for i in range(8)},
    }
    with pytest.raises(ToolArgumentsError) as info:
        arguments_check(schema=schema, arguments={f"p{i}": "x" for i in range(8)})
    assert str(info.value).endswith("(and 3 more)")


def test_it_checks_an_empty_schema_as_any_object():
    arguments_check(schema={}, arguments={"anything": 1})


def test_it_rejects_a_schema_that_is_not_json_schema():
    with pytest.raises(ToolArgumentsError, match="not a valid JSON Schema"):
        schema_check({"type": "object", "properties": {"a": {"type": "strng"}}})


def test_it_accepts_a_valid_schema():
    schema_check(SCHEMA)
