"""SmolLM2-135M (the embedded local model) on BFCL's non-live ``simple`` category, with
and without the tool grammar.

    .venv/bin/python bench/bfcl_local.py                 # all 400 questions (slow on a CPU)
    .venv/bin/python bench/bfcl_local.py --limit 50      # the first 50
    .venv/bin/python bench/bfcl_local.py --offset 25 --limit 50 --modes grammar

Each question goes through our ``LocalBackend`` exactly as an agent's model call does
(tools described in the system prompt, the call read back from ``<tool_call>``):

- ``prompt``: no grammar; the model writes whatever it writes.
- ``grammar``: ``tool_choice=required`` with the grammar built from the function's JSON
  Schema: the model must write one call that parses and matches the schema.

A call is correct when its function name matches and every argument's value is one of
the possible answers (numbers compared as numbers, strings case- and space-insensitive),
no argument the answer lacks is given, and every argument the answer requires is there.
That is a simple AST-style check, not BFCL's full checker (issue 12 builds that).
The data is read from ``/work/shared/data/bfcl`` (``--data`` elsewhere). The last line
is ``grammar_accuracy=…`` (of the last mode run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")


def norm_str(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum())


def value_matches(value, allowed: list) -> bool:
    for option in allowed:
        if isinstance(option, bool) or isinstance(value, bool):
            if value is option:
                return True
        elif isinstance(option, int | float) and isinstance(value, int | float):
            if float(option) == float(value):
                return True
        elif isinstance(option, str) and isinstance(value, str):
            if norm_str(option) == norm_str(value):
                return True
        elif isinstance(option, list) and isinstance(value, list):
            if len(option) == len(value) and all(
                value_matches(v, [o]) for v, o in zip(value, option, strict=True)
            ):
                return True
        elif option == value:
            return True
    return False


def call_correct(name: str, arguments: dict, truth: dict) -> bool:
    """``truth`` is one BFCL ground-truth entry: {function: {arg: [allowed values]}}."""
    [(want_name, want_args)] = truth.items()
    if name != want_name or not isinstance(arguments, dict):
        return False
    for key, value in arguments.items():
        if key not in want_args or not value_matches(value, want_args[key]):
            return False
    # An argument whose allowed values include "" may be left out.
    return all(key in arguments or "" in allowed for key, allowed in want_args.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/work/shared/data/bfcl")
    parser.add_argument("--offset", type=int, default=0, help="skip the first N questions")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--modes", default="prompt,grammar", help="comma-separated")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    import django

    django.setup()
    from agents.llm import ModelError
    from agents.llm.local import LocalBackend
    from agents.models import ModelEndpoint

    data = Path(args.data)
    questions = [json.loads(line) for line in (data / "BFCL_v4_simple_python.json").open()]
    answers = {
        a["id"]: a["ground_truth"]
        for a in map(json.loads, (data / "possible_answer" / "BFCL_v4_simple_python.json").open())
    }
    questions = questions[args.offset :]
    if args.limit:
        questions = questions[: args.limit]

    modes = {
        "prompt": {"grammar": False},
        "grammar": {"grammar": True, "tool_choice": "required"},
    }
    modes = {m: modes[m] for m in args.modes.split(",")}
    scores = {}
    for mode, extra in modes.items():
        backend = LocalBackend(
            ModelEndpoint(
                name="bench",
                kind="local",
                config={"max_tokens": args.max_tokens, "n_ctx": 4096, **extra},
            )
        )
        correct = parsed = 0
        started = time.monotonic()
        for q in questions:
            tools = [{"type": "function", "function": f} for f in q["function"]]
            try:
                reply = backend.complete(q["question"][0], tools)
            except ModelError as exc:
                print(f"{q['id']} {mode}: model error {exc}", file=sys.stderr)
                continue
            call = reply.tool_calls[0] if reply.tool_calls else None
            try:
                arguments = json.loads(call.arguments) if call and call.name else None
            except ValueError:
                arguments = None
            if arguments is not None:
                parsed += 1
                if call_correct(call.name, arguments, answers[q["id"]][0]):
                    correct += 1
        n = len(questions)
        scores[mode] = correct / n
        print(
            f"{mode}: {correct}/{n} correct ({correct / n:.1%}), {parsed}/{n} calls parsed, "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
    for mode, score in scores.items():
        print(f"{mode}_accuracy={score:.3f}")


if __name__ == "__main__":
    main()
