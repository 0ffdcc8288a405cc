import json

import pytest
from django.core.management import CommandError, call_command

from agents.evals.datasets import (
    DatasetFileError,
    bfcl_items_parse,
    item_tool_specs,
    jsonl_items_parse,
)
from agents.evals.models import Dataset

CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple"]


@pytest.mark.django_db
@pytest.mark.parametrize("category", CATEGORIES)
def test_it_imports_each_bfcl_category_with_its_answers(bfcl_dir, category, capsys):
    questions = bfcl_dir / f"BFCL_v4_{category}.json"
    answers = bfcl_dir / "possible_answer" / f"BFCL_v4_{category}.json"
    expected = sum(1 for line in questions.read_text().splitlines() if line.strip())

    call_command(
        "dataset_import",
        str(questions),
        "--format",
        "bfcl",
        "--answers",
        str(answers),
        "--name",
        category.replace("_", "-"),
    )

    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {"dataset": category.replace("_", "-"), "items": expected}
    dataset = Dataset.objects.get(name=category.replace("_", "-"))
    first = dataset.items.order_by("index").first()
    assert first.external_id == f"{category}_0"
    assert first.category == category
    assert first.messages[0]["role"] == "user"
    assert first.expected_calls  # the possible answer came along


@pytest.mark.django_db
def test_irrelevance_needs_no_answers(bfcl_dir, capsys):
    call_command(
        "dataset_import",
        str(bfcl_dir / "BFCL_v4_irrelevance.json"),
        "--format",
        "bfcl",
        "--name",
        "irr",
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"] == 240


@pytest.mark.django_db
def test_a_question_without_its_answer_is_refused_and_nothing_is_saved(bfcl_dir):
    with pytest.raises(
        CommandError, match=r"line 1: no possible answer for 'simple_python_0'.*--answers"
    ):
        call_command(
            "dataset_import",
            str(bfcl_dir / "BFCL_v4_simple_python.json"),
            "--format",
            "bfcl",
            "--name",
            "x",
        )
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_our_jsonl_format_imports_and_a_bad_line_is_named(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"question": "2+2?", "expected_answer": "4"})
        + "\n"
        + json.dumps(
            {
                "id": "q2",
                "messages": [{"role": "user", "content": "Weather in Oslo"}],
                "functions": [
                    {
                        "name": "weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    }
                ],
                "expected_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
            }
        )
        + "\n"
    )
    call_command("dataset_import", str(good), "--format", "jsonl", "--name", "mine")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "dataset": "mine",
        "items": 2,
    }

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"question": "ok", "expected_answer": "x"})
        + "\n"
        + json.dumps({"question": ""})
        + "\n"
    )
    with pytest.raises(
        CommandError, match="bad.jsonl, line 2: needs 'messages' or a non-empty 'question'"
    ):
        call_command("dataset_import", str(bad), "--format", "jsonl", "--name", "bad")
    assert not Dataset.objects.filter(name="bad").exists()


@pytest.mark.django_db
def test_a_taken_name_and_a_missing_file_are_clear_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"question": "q", "expected_answer": "a"}) + "\n")
    call_command("dataset_import", str(path), "--format", "jsonl", "--name", "d")
    with pytest.raises(CommandError, match="named 'd' exists already"):
        call_command("dataset_import", str(path), "--format", "jsonl", "--name", "d")
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "dataset_import", str(tmp_path / "nope.jsonl"), "--format", "jsonl", "--name", "e"
        )
    with pytest.raises(CommandError, match="must be a slug"):
        call_command("dataset_import", str(path), "--format", "jsonl", "--name", "Has Spaces")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1: not JSON"),
        ('{"id": "simple_1", "question": "text", "function": []}', "list of turns"),
        (
            '{"id": "simple_1", "question": [[{"role": "user"}]], "function": []}',
            "'role' and 'content'",
        ),
        (
            '{"id": "simple_1", "question": [[{"role": "user", "content": "x"}]]}',
            "missing field 'function'",
        ),
    ],
)
def test_bfcl_lines_that_cannot_be_read_are_named(line, message):
    with pytest.raises(DatasetFileError, match=message):
        bfcl_items_parse([line], [], questions_name="q.json")


def test_bfcl_functions_are_offered_as_valid_openai_tools():
    from jsonschema import Draft202012Validator

    (item,) = bfcl_items_parse(
        [
            json.dumps(
                {
                    "id": "simple_python_0",
                    "question": [[{"role": "user", "content": "x"}]],
                    "function": [
                        {
                            "name": "math.hypot",
                            "description": "d",
                            "parameters": {
                                "type": "dict",
                                "properties": {
                                    "x": {"type": "float"},
                                    "v": {"type": "tuple", "items": {"type": "integer"}},
                                },
                                "required": ["x"],
                            },
                        }
                    ],
                }
            )
        ],
        [json.dumps({"id": "simple_python_0", "ground_truth": [{"math.hypot": {"x": [1.0]}}]})],
    )
    (spec,) = item_tool_specs(item.functions, item.function_format)
    assert spec["function"]["name"] == "math_hypot"
    parameters = spec["function"]["parameters"]
    assert parameters["type"] == "object"
    assert parameters["properties"]["x"]["type"] == "number"
    assert parameters["properties"]["v"] == {"type": "array", "items": {"type": "integer"}}
    Draft202012Validator.check_schema(parameters)


def test_jsonl_items_need_something_to_score_against():
    with pytest.raises(DatasetFileError, match="give 'expected_calls' or 'expected_answer'"):
        jsonl_items_parse(['{"question": "hello"}'])
