"""BFCL's AST checker: is a decoded model output an acceptable answer to a BFCL case?

Faithful to the Berkeley Function Calling Leaderboard's official rules (``bfcl_eval``'s
``ast_checker`` and the relevance rules of its evaluation runner), verified against the
official verdicts on every candidate in ``shared/data/bfcl/oracle/`` (see the tests):

- the output must be a list of ``{function_name: {argument: value}}`` items;
- simple: exactly one call; multiple: as many calls as expected, checked against the
  expected function; parallel (and parallel_multiple): each expected call, in order, is
  matched greedily to the first still-unmatched output call that passes (so, like the
  official checker, a verdict can depend on the order of calls);
- per call: the function name, required parameters present, no parameter outside the
  function's doc or the answer, the declared type (an int is accepted for a float in
  Python; Java and JavaScript values are read from their source text first), the value in
  the list of acceptable values (strings compared after BFCL's normalisation: spaces and
  ``,./-_*^`` removed, lower case, single quotes as double), an answer's parameter may be
  left out only when ``""`` is among its acceptable values;
- irrelevance: valid when the output holds no call; relevance (live_relevance): valid when
  it holds one.

Pure Python with no Django; ``bfcl_check`` returns a ``Verdict`` with the official error
type (``simple_function_checker:missing_required``, ``type_error:simple``, …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .bfcl_types import JAVA_TYPES, JS_TYPES, java_value, js_value

PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_PYTHON_NESTED = ("array", "tuple")
_CONVERTED_NESTED = ("Array", "ArrayList", "array")
_NORMALISE = re.compile(r"[ \,\.\/\-\_\*\^]")
_SOURCE_LANGUAGES = {
    "java": (JAVA_TYPES, java_value, "type_error:java"),
    "javascript": (JS_TYPES, js_value, "type_error:js"),
}


@dataclass
class Verdict:
    valid: bool
    error_type: str | None = None
    errors: list[Any] = field(default_factory=list)

    @property
    def reason(self) -> str:
        if self.valid:
            return "valid"
        first = self.errors[0] if self.errors else ""
        return f"{self.error_type}: {first}" if first else str(self.error_type)


_VALID = Verdict(True)


def _fail(error_type: str, message: Any) -> Verdict:
    return Verdict(False, error_type, [message])


# --- output shape -----------------------------------------------------------------------


def is_call_list(output: Any) -> bool:
    """BFCL's "function calling format": a list of single-key dicts of dicts."""
    if type(output) is not list:
        return False
    for item in output:
        if type(item) is not dict or len(item) != 1:
            return False
        if type(next(iter(item.values()))) is not dict:
            return False
    return True


def has_no_call(output: Any) -> bool:
    """BFCL's ``is_empty_output``: [], [{}] and anything not in call format hold no call."""
    return (
        not is_call_list(output) or len(output) == 0 or (len(output) == 1 and len(output[0]) == 0)
    )


# --- values -----------------------------------------------------------------------------


def normalise(text: str) -> str:
    return _NORMALISE.sub("", text).lower().replace("'", '"')


def _normalised_options(options: list[Any]) -> list[Any]:
    return [normalise(o) if type(o) is str else o for o in options]


def _first_type(options: list[Any]) -> type | None:
    for option in options:
        if option != "":
            return type(option)
    return None


def _type_check(
    param: str, value: Any, options: list[Any], declared: str, expected: type, item: type | None
) -> tuple[Verdict, bool]:
    """(verdict, is_variable). A "variable" is an answer option whose type differs from
    the declared one (e.g. an identifier given for a Java array): then the value is
    compared as written rather than by its declared type."""
    answer_type = _first_type(options)
    is_variable = answer_type is not None and answer_type is not expected
    nested_error = None
    if type(value) is expected:
        if item is None:
            return _VALID, is_variable
        for option in options:
            if type(option) is list and not all(
                _type_check(param, v, option, item.__name__, item, None)[0].valid for v in value
            ):
                continue
            return _VALID, is_variable
        nested_error = _fail(
            "type_error:nested",
            f"Nested type checking failed for parameter {param!r}. Expected outer type "
            f"{declared} with inner type {item}. Parameter value: {value!r}.",
        )
    if answer_type is not None and type(value) is answer_type:
        # Read as a variable; a nested failure above still stands (as in the official
        # checker, which returns its already-failed result here).
        return (nested_error or _VALID), True
    verdict = _fail(
        "type_error:simple",
        f"Incorrect type for parameter {param!r}. Expected type {declared}, got "
        f"{type(value).__name__}. Parameter value: {value!r}.",
    )
    if nested_error is not None:
        verdict.errors = nested_error.errors + verdict.errors
    return verdict, False


def _dict_check(param: str, value: dict, answers: list[Any]) -> Verdict:
    verdict = Verdict(False, "dict_checker:unclear")
    for answer in answers:
        if answer == "":
            continue
        verdict = Verdict(False, "dict_checker:unclear")
        ok = True
        for key, item in value.items():
            if key not in answer:
                verdict = _fail("value_error:dict_key", f"Unexpected dict key parameter: '{key}'.")
                ok = False
                break
            wanted = _normalised_options(answer[key])
            got = normalise(item) if type(item) is str else item
            if got not in wanted:
                verdict = _fail(
                    "value_error:dict_value",
                    f"Invalid value for parameter {key!r}: {item!r}. Expected one of {wanted}.",
                )
                ok = False
                break
        for key, options in answer.items():
            if key not in value and "" not in options:
                verdict = _fail("value_error:dict_key", f"Missing dict key parameter: '{key}'.")
                ok = False
                break
        if ok:
            return _VALID
    return verdict


def _list_of_dicts_check(param: str, value: list, answers: list[Any]) -> Verdict:
    verdict = Verdict(False, "list_dict_checker:unclear")
    for answer in answers:
        if len(value) != len(answer):
            verdict = _fail(
                "value_error:list_dict_count", "Wrong number of dictionaries in the list."
            )
            continue
        ok = True
        for index, element in enumerate(value):
            verdict = _dict_check(param, element, [answer[index]])
            if not verdict.valid:
                ok = False
                break
        if ok:
            return _VALID
    return verdict


def _list_check(param: str, value: list, answers: list[Any]) -> Verdict:
    got = [normalise(v) if type(v) is str else v for v in value]
    wanted = [[normalise(v) if type(v) is str else v for v in answer] for answer in answers]
    if got not in wanted:
        return _fail(
            "value_error:list/tuple",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {answers}.",
        )
    return _VALID


def _string_check(param: str, value: str, answers: list[Any]) -> Verdict:
    wanted = [normalise(a) for a in answers if type(a) is str]
    if normalise(value) not in wanted:
        return _fail(
            "value_error:string",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {answers}. "
            "Case insensitive.",
        )
    return _VALID


# --- one call ---------------------------------------------------------------------------


def check_call(
    doc: dict[str, Any], call: dict[str, Any], answer: dict[str, Any], language: str
) -> Verdict:
    """One output call ``{name: args}`` against one answer ``{name: {param: [options]}}``
    and the function's doc."""
    options_by_param = next(iter(answer.values()))
    name = doc["name"]
    properties = doc["parameters"]["properties"]
    if name not in call:
        return _fail(
            "simple_function_checker:wrong_func_name",
            f"Function name {name!r} not found in model output.",
        )
    arguments = call[name]
    for param in doc["parameters"].get("required", []):
        if param not in arguments:
            return _fail(
                "simple_function_checker:missing_required",
                f"Missing required parameter: {param!r}.",
            )
    for param, value in arguments.items():
        if param not in properties or param not in options_by_param:
            return _fail(
                "simple_function_checker:unexpected_param", f"Unexpected parameter: {param!r}."
            )
        declared = properties[param]["type"]
        options = options_by_param[param]
        item: type | None = None
        if language in _SOURCE_LANGUAGES:
            # Java/JavaScript values arrive as source text, read by the declared type.
            types, read, error_type = _SOURCE_LANGUAGES[language]
            expected = types[declared]
            if type(value) is not str:
                return _fail(
                    error_type,
                    f"Incorrect type for parameter {param!r}. Expected type String, got "
                    f"{type(value).__name__}. Parameter value: {value!r}.",
                )
            if declared in _CONVERTED_NESTED:
                item_declared = properties[param]["items"]["type"]
                item = types[item_declared]
                value = read(value, declared, item_declared)
            else:
                value = read(value, declared)
        else:
            expected = PYTHON_TYPES[declared]
            if declared in _PYTHON_NESTED:
                item = PYTHON_TYPES[properties[param]["items"]["type"]]
        if declared == "tuple" and type(value) is tuple:
            value = list(value)
        if language == "python" and declared == "float" and type(value) is int:
            value = float(value)  # Python's own int → float promotion is accepted

        verdict, is_variable = _type_check(param, value, options, declared, expected, item)
        if not verdict.valid:
            return verdict
        if not is_variable:
            if expected is dict:
                verdict = _dict_check(param, value, options)
            elif expected is list and item is dict:
                verdict = _list_of_dicts_check(param, value, options)
            elif expected is str:
                verdict = _string_check(param, value, options)
            elif expected is list:
                verdict = _list_check(param, value, options)
            else:
                verdict = None
            if verdict is not None:
                if not verdict.valid:
                    return verdict
                continue
        if value not in options:
            return _fail(
                "value_error:others",
                f"Invalid value for parameter {param!r}: {value!r}. Expected one of {options}.",
            )
    for param, options in options_by_param.items():
        if param not in arguments and "" not in options:
            return _fail(
                "simple_function_checker:missing_optional",
                f"Optional parameter {param!r} not provided and not marked as optional.",
            )
    return _VALID


def _doc_for(docs: list[dict[str, Any]] | dict[str, Any], name: str) -> dict[str, Any] | None:
    if isinstance(docs, dict):
        return docs
    return next((d for d in docs if d["name"] == name), None)


# --- categories -------------------------------------------------------------------------


def _parallel(docs, output: list, answers: list, language: str) -> Verdict:
    if len(output) != len(answers):
        return _fail("parallel_function_checker_no_order:wrong_count", "Wrong number of functions.")
    matched: set[int] = set()
    for answer_index, answer in enumerate(answers):
        doc = _doc_for(docs, next(iter(answer)))
        errors: list[Any] = []
        found = False
        for index, call in enumerate(output):
            if index in matched:
                continue
            verdict = check_call(doc, call, answer, language)
            if verdict.valid:
                matched.add(index)
                found = True
                break
            errors.append(
                {
                    f"Model Result Index {index}": {
                        "sub_error": verdict.errors,
                        "sub_error_type": verdict.error_type,
                    }
                }
            )
        if not found:
            left = [i for i in range(len(output)) if i not in matched]
            message = (
                f"Could not find a matching function among index {left} of model output "
                f"for index {answer_index} of possible answers."
            )
            return Verdict(
                False, "parallel_function_checker_no_order:cannot_find_match", [message, *errors]
            )
    return _VALID


def bfcl_check(
    *,
    category: str,
    functions: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]] | None,
    model_output: Any,
    language: str = "python",
) -> Verdict:
    """Judge one decoded model output for one BFCL case, as the official checker does.

    ``category`` is BFCL's (``simple_python``, ``multiple``, ``parallel``,
    ``parallel_multiple``, ``irrelevance``, ``live_simple``, ``live_relevance``, …);
    ``language`` is ``python``, ``java`` or ``javascript``.
    """
    language = language.lower()
    if "irrelevance" in category:
        if has_no_call(model_output):
            return _VALID
        return _fail(
            "irrelevance_error:decoder_success",
            "Valid syntax. Successfully decode AST when it should not.",
        )
    if "relevance" in category:
        if not has_no_call(model_output):
            return _VALID
        return _fail(
            "relevance_error:decoder_failed",
            "Valid syntax. Failed to decode AST when it should.",
        )
    if not is_call_list(model_output):
        return _fail(
            "ast_decoder:decoder_wrong_output_format",
            "Did not output in the specified format. Note: the model_result is wrapped in a "
            "string to ensure json serializability.",
        )
    answers = ground_truth or []
    if "parallel" in category:
        return _parallel(functions, model_output, answers, language)
    if "multiple" in category:
        if len(model_output) != len(answers):
            return _fail("multiple_function_checker:wrong_count", "Wrong number of functions.")
        doc = _doc_for(functions, next(iter(answers[0])))
        return check_call(doc, model_output[0], answers[0], language)
    if len(model_output) != 1:
        return _fail("simple_function_checker:wrong_count", "Wrong number of functions.")
    return check_call(functions[0], model_output[0], answers[0], language)
