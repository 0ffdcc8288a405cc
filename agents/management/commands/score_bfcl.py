import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from agents.evals.bfcl_io import CandidateFileError, candidate_score, candidates_read


class Command(BaseCommand):
    help = (
        "Score BFCL candidate outputs with the BFCL-faithful AST checker. Each input line has "
        "candidate_id, category, language, functions, ground_truth, model_output (BFCL's decoded "
        "form); each output line is {candidate_id, valid, error_type}, in input order. The last "
        "line printed is agreement=<fraction> when the input carries official_valid, else the count."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--input", required=True, help="candidates, JSON Lines (.gz too)")
        parser.add_argument("--output", required=True, help="verdicts file to write (JSON Lines)")

    def handle(self, *args, **options) -> None:
        source, target = Path(options["input"]), Path(options["output"])
        rows, agree, judged = [], 0, 0
        try:
            for number, row in candidates_read(source):
                scored = candidate_score(row, line=number)
                rows.append(scored.as_row())
                if scored.official_valid is not None:
                    judged += 1
                    agree += scored.official_valid == scored.valid
        except CandidateFileError as exc:
            raise CommandError(str(exc)) from exc
        # Written only once every line scored: a bad file leaves no half-written output.
        try:
            with target.open("w", encoding="utf-8") as out:
                for row in rows:
                    out.write(json.dumps(row) + "\n")
        except OSError as exc:
            raise CommandError(f"{target}: cannot be written: {exc.strerror or exc}") from exc
        valid = sum(r["valid"] for r in rows)
        self.stderr.write(
            f"scored {len(rows)} candidates: {valid} valid, {len(rows) - valid} invalid"
        )
        if judged and judged == len(rows):
            self.stdout.write(f"agreement={agree / judged:.6f}")
        else:
            self.stdout.write(str(len(rows)))
