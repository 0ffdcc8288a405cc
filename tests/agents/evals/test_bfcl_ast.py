"""The BFCL checker agrees with the official one on every oracle candidate, and each rule
holds on cases small enough to read."""

import gzip
import json
from collections import Counter

import pytest

from agents.evals.scorers.bfcl_ast import bfcl_check, normalise

DOC = {
    "name": "triangle_area",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["base", "height"],
    },
}
ANSWER = [{"triangle_area": {"base": [10], "height": [5.0], "unit": ["cm", ""], "tags": [""]}}]


def check(output, *, category="simple_python", functions=None, answer=ANSWER, language="python"):
    return bfcl_check(
        category=category,
        functions=functions or [DOC],
        ground_truth=answer,
        model_output=output,
        language=language,
    )


def test_it_agrees_with_the_official_checker_on_every_oracle_candidate(bfcl_dir):
    disagreements = Counter()
    total = 0
    with gzip.open(bfcl_dir / "oracle" / "nonlive_oracle.jsonl.gz", "rt") as handle:
        for line in handle:
            row = json.loads(line)
            total += 1
            verdict = bfcl_check(
                category=row["category"],
                functions=row["functions"],
                ground_truth=row["ground_truth"],
                model_output=row["model_output"],
                language=row["language"],
            )
            if (verdict.valid, verdict.error_type) != (
                row["official_valid"],
                row["official_error_type"],
            ):
                disagreements[row["candidate_id"]] += 1
    assert total == 8897
    assert not disagreements, f"{len(disagreements)} disagree, e.g. {list(disagreements)[:5]}"


def test_an_int_is_accepted_for_a_float_but_not_the_other_way():
    assert check([{"triangle_area": {"base": 10, "height": 5}}]).valid
    verdict = check([{"triangle_area": {"base": 10.0, "height": 5.0}}])
    assert verdict.error_type == "type_error:simple"


def test_strings_compare_after_bfcl_normalisation():
    assert normalise("New York, NY") == "newyorkny"
    assert check([{"triangle_area": {"base": 10, "height": 5.0, "unit": " C-M."}}]).valid
    assert check([{"triangle_area": {"base": 10, "height": 5.0, "unit": "mm"}}]).error_type == (
        "value_error:string"
    )


def test_optional_parameters_are_those_with_an_empty_string_option():
    assert check([{"triangle_area": {"base": 10, "height": 5.0}}]).valid
    answer = [{"triangle_area": {"base": [10], "height": [5.0], "unit": ["cm"]}}]
    verdict = check([{"triangle_area": {"base": 10, "height": 5.0}}], answer=answer)
    assert verdict.error_type == "simple_function_checker:missing_optional"


def test_unknown_and_missing_parameters_and_wrong_names_fail():
    assert check([{"triangle_area": {"base": 10}}]).error_type == (
        "simple_function_checker:missing_required"
    )
    assert check([{"triangle_area": {"base": 10, "height": 5.0, "colour": "red"}}]).error_type == (
        "simple_function_checker:unexpected_param"
    )
    assert check([{"area": {"base": 10, "height": 5.0}}]).error_type == (
        "simple_function_checker:wrong_func_name"
    )
    assert check([]).error_type == "simple_function_checker:wrong_count"
    assert check("triangle_area(base=10)").error_type == "ast_decoder:decoder_wrong_output_format"


def test_nested_list_items_are_type_checked():
    answer = [{"triangle_area": {"base": [10], "height": [5.0], "tags": [["a", "b"]]}}]
    assert check(
        [{"triangle_area": {"base": 10, "height": 5.0, "tags": ["A", "b"]}}], answer=answer
    ).valid
    verdict = check([{"triangle_area": {"base": 10, "height": 5.0, "tags": [1, 2]}}], answer=answer)
    assert verdict.error_type == "type_error:nested"


def test_parallel_calls_match_in_any_order_and_each_call_once():
    answers = [
        {"triangle_area": {"base": [10], "height": [5.0]}},
        {"triangle_area": {"base": [3], "height": [4.0]}},
    ]
    first = {"triangle_area": {"base": 10, "height": 5.0}}
    second = {"triangle_area": {"base": 3, "height": 4.0}}
    assert check([second, first], category="parallel", answer=answers).valid
    verdict = check([first, first], category="parallel", answer=answers)
    assert verdict.error_type == "parallel_function_checker_no_order:cannot_find_match"
    assert check([first], category="parallel", answer=answers).error_type == (
        "parallel_function_checker_no_order:wrong_count"
    )


def test_parallel_matching_is_greedy_like_the_official_checker():
    # Answer 0 accepts 3 or 10; answer 1 only 10. Given [10, 3] the first answer takes the
    # 10 and the second finds nothing left: the official checker says invalid, so do we.
    answers = [
        {"triangle_area": {"base": [3, 10], "height": [5.0]}},
        {"triangle_area": {"base": [10], "height": [5.0]}},
    ]
    ten = {"triangle_area": {"base": 10, "height": 5.0}}
    three = {"triangle_area": {"base": 3, "height": 5.0}}
    assert check([three, ten], category="parallel", answer=answers).valid
    assert not check([ten, three], category="parallel", answer=answers).valid


def test_multiple_checks_the_expected_function_among_several():
    other = {
        "name": "circle_area",
        "parameters": {"type": "dict", "properties": {}, "required": []},
    }
    call = [{"triangle_area": {"base": 10, "height": 5.0}}]
    assert check(call, category="multiple", functions=[other, DOC]).valid
    assert check([{"circle_area": {}}], category="multiple", functions=[other, DOC]).error_type == (
        "simple_function_checker:wrong_func_name"
    )


@pytest.mark.parametrize(
    ("category", "output", "valid"),
    [
        ("irrelevance", [], True),
        ("irrelevance", [{}], True),
        ("irrelevance", "I cannot help with that", True),
        ("irrelevance", [{"triangle_area": {"base": 1}}], False),
        ("live_irrelevance", [{"triangle_area": {"base": 1}}], False),
        ("live_relevance", [{"triangle_area": {"base": 1}}], True),
        ("live_relevance", [], False),
    ],
)
def test_relevance_categories_only_ask_whether_a_call_was_made(category, output, valid):
    assert check(output, category=category, answer=None).valid is valid


def test_java_values_are_read_from_their_source_text():
    doc = {
        "name": "Sched.plan",
        "parameters": {
            "type": "dict",
            "properties": {
                "delay": {"type": "long"},
                "ids": {"type": "ArrayList", "items": {"type": "long"}},
                "on": {"type": "boolean"},
            },
            "required": ["delay"],
        },
    }
    answer = [{"Sched.plan": {"delay": [5], "ids": [[1, 2]], "on": [True, ""]}}]
    ok = [
        {
            "Sched.plan": {
                "delay": "5L",
                "ids": "new ArrayList<Long>(Arrays.asList(1L, 2L))",
                "on": "true",
            }
        }
    ]
    assert check(ok, category="simple_java", functions=[doc], answer=answer, language="java").valid
    verdict = check(
        [{"Sched.plan": {"delay": 5}}],
        category="simple_java",
        functions=[doc],
        answer=answer,
        language="java",
    )
    assert verdict.error_type == "type_error:java"
    verdict = check(
        [{"Sched.plan": {"delay": "5"}}],
        category="simple_java",
        functions=[doc],
        answer=answer,
        language="java",
    )
    assert not verdict.valid  # an int literal is no long: it stays the text "5"


def test_javascript_values_are_read_from_their_source_text():
    doc = {
        "name": "fetchRows",
        "parameters": {
            "type": "dict",
            "properties": {
                "limit": {"type": "integer"},
                "cols": {"type": "array", "items": {"type": "String"}},
            },
            "required": ["limit"],
        },
    }
    answer = [{"fetchRows": {"limit": [10], "cols": [["id", "name"], ""]}}]
    ok = [{"fetchRows": {"limit": "10", "cols": '["id", "name"]'}}]
    assert check(
        ok, category="simple_javascript", functions=[doc], answer=answer, language="javascript"
    ).valid
    bad = [{"fetchRows": {"limit": "10.0"}}]
    assert not check(
        bad, category="simple_javascript", functions=[doc], answer=answer, language="javascript"
    ).valid
