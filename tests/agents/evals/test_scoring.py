import pytest

from agents.evals.scorers.answer import answer_match
from agents.evals.scorers.calls import exact_calls, hallucination, tool_selection, tool_use_decision
from agents.evals.scorers.judge import llm_judge
from agents.evals.scoring import calls_to_bfcl, item_score, mcnemar_exact, wilson_interval


def test_exact_calls_ignore_order_but_not_arguments():
    a = {"name": "weather", "arguments": {"city": "Oslo"}}
    b = {"name": "time", "arguments": {"tz": "UTC"}}
    assert exact_calls(calls=[b, a], expected=[a, b]).valid
    verdict = exact_calls(calls=[a, {"name": "time", "arguments": {"tz": "CET"}}], expected=[a, b])
    assert not verdict.valid
    assert "expected but not made" in verdict.reason and "CET" in verdict.reason


def test_selection_decision_and_hallucination_figures():
    functions = [{"name": "weather", "parameters": {"properties": {"city": {}}}}]
    calls = [
        {"name": "weather", "arguments": {"city": "Oslo", "units": "C"}},
        {"name": "stocks", "arguments": {}},
    ]
    assert not tool_selection(calls=calls, expected=[{"name": "weather"}])
    assert tool_use_decision(calls=[], tool_expected=False)
    assert not tool_use_decision(calls=calls, tool_expected=False)
    assert hallucination(calls=calls, functions=functions) == {
        "hallucinated_tools": 1,
        "hallucinated_arguments": 1,
    }


def test_answers_match_after_normalising():
    assert answer_match(answer="The answer is 391.", expected="391").valid
    assert not answer_match(answer="3910", expected="391").valid


def test_the_judge_reads_a_json_score_and_says_when_it_cannot():
    assert llm_judge(
        complete=lambda p: '{"score": 0.9, "reason": "fine"}', task="t", answer="a"
    ).valid
    low = llm_judge(
        complete=lambda p: 'Sure! {"score": 0.2, "reason": "wrong"}', task="t", answer="a"
    )
    assert not low.valid and "0.2" in low.reason
    broken = llm_judge(complete=lambda p: "looks good to me", task="t", answer="a")
    assert broken.error_type == "judge:unusable_answer"


def test_bfcl_items_are_scored_under_their_original_function_names():
    functions = [
        {
            "name": "math.factorial",
            "parameters": {
                "type": "dict",
                "properties": {"number": {"type": "integer"}},
                "required": ["number"],
            },
        }
    ]
    calls = [{"name": "math_factorial", "arguments": {"number": 5}}]
    assert calls_to_bfcl(calls, functions) == [{"math.factorial": {"number": 5}}]
    judged = item_score(
        category="simple_python",
        language="python",
        function_format="bfcl",
        functions=functions,
        expected_calls=[{"math.factorial": {"number": [5]}}],
        expected_answer="",
        calls=calls,
        answer="",
    )
    assert (
        judged["valid"]
        and judged["scores"]["bfcl_ast"] == 1.0
        and judged["scores"]["tool_selection"] == 1.0
    )


def test_wilson_interval_and_mcnemar_match_textbook_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) is None
    # b=1, c=9: two-sided exact binomial p = 2 * (1 + 10) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
