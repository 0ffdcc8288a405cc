"""The built-in tools the demo agents call."""

from __future__ import annotations

import pytest

from toolsapp.builtin import BUILTIN_TOOLS, calculator, clock, echo, unit_convert
from toolsapp.models import Tool, Toolset
from toolsapp.services import builtin_tools_sync
from toolsapp.validation import schema_check


def test_the_calculator_evaluates_arithmetic_with_functions_and_constants():
    assert calculator("(2 + 3) * sqrt(16)")["result"] == 20
    assert calculator("-2 ** 2 + 10 // 3 % 2")["result"] == -3
    assert calculator("round(pi, 2)")["result"] == 3.14


def test_the_calculator_refuses_anything_but_arithmetic():
    with pytest.raises(ValueError, match="unsupported expression element"):
        calculator("__import__('os').system('true')")
    with pytest.raises(ValueError, match="unsupported expression element"):
        calculator("'a' * 3")


def test_the_calculator_refuses_huge_exponents():
    with pytest.raises(ValueError, match="exponent too large"):
        calculator("9 ** 99999")


@pytest.mark.parametrize(
    "expression",
    ["((10**999)**999)**999", "10**300 * 10**300 * 10**300 * 10**300 * 10**300", "2.5 ** 1000.0"],
)
def test_the_calculator_refuses_results_too_large_to_compute_quickly(expression):
    # Exact big-integer powers hold the GIL for minutes; no timeout could stop them.
    with pytest.raises(ValueError, match="too large"):
        calculator(expression)


def test_the_calculator_still_computes_big_but_reasonable_powers():
    assert calculator("2**1000")["result"] == 2**1000


def test_the_calculator_reports_text_that_is_not_an_expression():
    with pytest.raises(ValueError, match="not an arithmetic expression"):
        calculator("2 +")


def test_the_clock_answers_in_the_asked_time_zone():
    answer = clock("Asia/Kolkata")
    assert answer["timezone"] == "Asia/Kolkata"
    assert answer["iso"].endswith("+05:30")
    assert answer["weekday"] in {
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    }


def test_the_clock_rejects_an_unknown_time_zone():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        clock("Mars/Olympus")


def test_unit_convert_converts_within_a_dimension():
    assert unit_convert(5, "km", "mi")["result"] == pytest.approx(3.1068559612)
    assert unit_convert(2, "lb", "g")["result"] == pytest.approx(907.18474)
    assert unit_convert(1, "day", "min")["result"] == 1440


def test_unit_convert_converts_temperatures():
    assert unit_convert(100, "C", "F")["result"] == pytest.approx(212)
    assert unit_convert(0, "k", "c")["result"] == pytest.approx(-273.15)


def test_unit_convert_refuses_to_mix_dimensions():
    with pytest.raises(ValueError, match=r"cannot convert length \(km\) to mass \(kg\)"):
        unit_convert(1, "km", "kg")


def test_unit_convert_names_an_unknown_unit():
    with pytest.raises(ValueError, match="unknown unit 'parsec'"):
        unit_convert(1, "parsec", "km")


def test_echo_returns_markup_unchanged():
    assert echo("<script>alert(1)</script>") == {"text": "<script>alert(1)</script>"}


def test_every_builtin_schema_is_valid_json_schema():
    for spec in BUILTIN_TOOLS:
        schema_check(spec["parameters"])


@pytest.mark.django_db
def test_syncing_builtins_twice_keeps_one_tool_each_in_the_builtin_toolset():
    builtin_tools_sync()
    Tool.objects.filter(name="echo").update(description="edited by hand")
    builtin_tools_sync()
    names = sorted(spec["name"] for spec in BUILTIN_TOOLS)
    assert sorted(Tool.objects.values_list("name", flat=True)) == names
    assert Tool.objects.get(name="echo").description == "Return the given text unchanged."
    toolset = Toolset.objects.get(slug="builtin")
    assert sorted(toolset.tools.values_list("name", flat=True)) == names


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("round(1, -10**9)", "round's digits must be between"),
        ("round(1, 10**9)", "round's digits must be between"),
        ("round(2.5, 1.5)", "whole number"),
        ("1e308 * 10", "not a finite number"),
        ("exp(100000)", "exp: result too large"),
        ("-" * 300 + "1", "nested too deeply"),
        ("(" * 240 + "1" + ")" * 240, "not an arithmetic expression"),
        ("1" * 501, "too long"),
        ("1+" * 200 + "1", "nested too deeply"),
    ],
)
def test_the_calculator_refuses_arguments_that_grow_without_bound(expression, message):
    with pytest.raises(ValueError, match=message):
        calculator(expression)


@pytest.mark.django_db
def test_a_runaway_round_becomes_a_clear_error_step_at_once():
    from toolsapp.executors import ToolExecutionError
    from toolsapp.models import Tool
    from toolsapp.services import builtin_tools_sync, tool_execute

    builtin_tools_sync()
    with pytest.raises(ToolExecutionError, match="round's digits"):
        tool_execute(
            tool=Tool.objects.get(name="calculator"),
            arguments={"expression": "round(1, -10**9)"},
        )


def test_unit_convert_and_echo_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="too large"):
        unit_convert(1e308, "mi", "mm")
    with pytest.raises(ValueError, match="a float can hold"):
        unit_convert(10**400, "m", "km")
    with pytest.raises(ValueError, match="too long"):
        echo("x" * 100_001)
