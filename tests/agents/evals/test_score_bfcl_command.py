import gzip
import json

import pytest
from django.core.management import CommandError, call_command


def test_it_writes_one_verdict_per_candidate_in_order_and_prints_the_agreement(
    bfcl_dir, tmp_path, capsys
):
    rows = []
    with gzip.open(bfcl_dir / "oracle" / "nonlive_oracle.jsonl.gz", "rt") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == 300:
                break
    source = tmp_path / "candidates.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = tmp_path / "verdicts.jsonl"

    call_command("score_bfcl", "--input", str(source), "--output", str(target))

    verdicts = [json.loads(line) for line in target.read_text().splitlines()]
    assert [v["candidate_id"] for v in verdicts] == [r["candidate_id"] for r in rows]
    assert set(verdicts[0]) == {"candidate_id", "valid", "error_type"}
    assert [v["valid"] for v in verdicts] == [r["official_valid"] for r in rows]
    assert capsys.readouterr().out.strip().splitlines()[-1] == "agreement=1.000000"


def test_without_official_verdicts_the_last_line_is_the_count(bfcl_dir, tmp_path, capsys):
    with gzip.open(bfcl_dir / "oracle" / "nonlive_oracle.jsonl.gz", "rt") as handle:
        row = json.loads(handle.readline())
    row.pop("official_valid")
    source = tmp_path / "candidates.jsonl"
    source.write_text(json.dumps(row) + "\n\n" + json.dumps(row) + "\n")

    call_command("score_bfcl", "--input", str(source), "--output", str(tmp_path / "out.jsonl"))

    assert capsys.readouterr().out.strip().splitlines()[-1] == "2"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"candidate_id": "a"}\nnot json\n', "line 1: missing field"),
        (
            '{"candidate_id": "a", "category": "simple", "functions": [], "model_output": []}\n{oops\n',
            "line 2: not JSON",
        ),
        ("[1, 2]\n", "line 1: expected a JSON object"),
    ],
)
def test_a_bad_file_names_the_line_and_writes_nothing(tmp_path, content, message):
    source = tmp_path / "bad.jsonl"
    source.write_text(content)
    target = tmp_path / "out.jsonl"
    with pytest.raises(CommandError, match=message):
        call_command("score_bfcl", "--input", str(source), "--output", str(target))
    assert not target.exists()


def test_a_missing_input_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot be read"):
        call_command(
            "score_bfcl", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")
        )
