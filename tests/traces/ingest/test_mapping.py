"""OTLP spans → step records: pure functions, no database."""

from __future__ import annotations

import gzip
import json

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.ingest.decode import IngestError, decompress, media_type, parse
from traces.ingest.mapping import request_to_records

from .otlp_builders import (
    genai_agent_spans,
    new_span_id,
    new_trace_id,
    request,
    span,
)


def records_of(*spans):
    return request_to_records(request(*spans)).records


def test_genai_spans_become_agent_model_and_tool_steps_with_their_fields():
    tid = new_trace_id()
    agent, chat, tool = records_of(*genai_agent_spans(tid))

    assert (agent.kind, agent.name, agent.parent_span_id) == ("agent", "Weather", "")
    assert chat.kind == "model_call"
    assert chat.name == "gpt-4o"
    assert chat.parent_span_id == agent.span_id
    assert (chat.prompt_tokens, chat.completion_tokens) == (40, 12)
    assert chat.input == {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    assert chat.output["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert chat.metadata["provider"] == "openai"
    assert chat.metadata["model"] == "gpt-4o"
    assert tool.kind == "tool_call"
    assert (tool.name, tool.tool_call_id) == ("get_weather", "call_1")
    assert tool.input == {"city": "Paris"}
    assert tool.output == {"temp_c": 18}
    assert tool.otel_trace_id == tid.hex()
    assert tool.service_name == "my-agent"


def test_every_attribute_is_kept_including_unknown_ones():
    chat = records_of(*genai_agent_spans(new_trace_id()))[1]
    attrs = chat.metadata["attributes"]
    assert attrs["custom.flag"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 40
    assert chat.metadata["otel"]["resource"] == {"service.name": "my-agent"}
    assert chat.metadata["otel"]["scope"] == {"name": "tests", "version": "1.0"}


@pytest.mark.parametrize(
    ("span_kind", "step_kind"),
    [
        ("LLM", "model_call"),
        ("TOOL", "tool_call"),
        ("AGENT", "agent"),
        ("CHAIN", "chain"),
        ("RETRIEVER", "retriever"),
        ("GUARDRAIL", "span"),
    ],
)
def test_openinference_span_kinds_map_onto_step_kinds(span_kind, step_kind):
    (record,) = records_of(
        span("x", trace_id=new_trace_id(), attrs={"openinference.span.kind": span_kind})
    )
    assert record.kind == step_kind


def test_openinference_llm_messages_tokens_and_model_are_read():
    (record,) = records_of(
        span(
            "ChatOpenAI",
            trace_id=new_trace_id(),
            attrs={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.provider": "openai",
                "llm.token_count.prompt": 7,
                "llm.token_count.completion": 3,
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "Be brief.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "2+2?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "t1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "add",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"a":2}',
            },
        )
    )
    assert record.name == "gpt-4o-mini"
    assert [m["role"] for m in record.input["messages"]] == ["system", "user"]
    assert record.input["messages"][1]["content"] == "2+2?"
    assert record.output["tool_calls"] == [{"id": "t1", "name": "add", "arguments": '{"a":2}'}]
    assert (record.prompt_tokens, record.completion_tokens) == (7, 3)
    assert record.metadata["provider"] == "openai"


def test_openinference_tool_and_chain_take_input_and_output_values():
    tid = new_trace_id()
    tool, chain = records_of(
        span(
            "search",
            trace_id=tid,
            attrs={
                "openinference.span.kind": "TOOL",
                "tool.name": "search",
                "input.value": '{"q": "otlp"}',
                "output.value": "3 results",
            },
        ),
        span(
            "chain",
            trace_id=tid,
            attrs={"openinference.span.kind": "CHAIN", "input.value": "hi", "output.value": "ok"},
        ),
    )
    assert (tool.kind, tool.name, tool.input, tool.output) == (
        "tool_call",
        "search",
        {"q": "otlp"},
        "3 results",
    )
    assert (chain.input, chain.output) == ("hi", "ok")


def test_an_error_status_gives_the_step_its_error_from_the_exception_event():
    (record,) = records_of(
        span(
            "execute_tool boom",
            trace_id=new_trace_id(),
            attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "boom"},
            error="",
            events=[("exception", {"exception.type": "ValueError", "exception.message": "bad"})],
        )
    )
    assert record.error == "ValueError: bad"
    assert record.metadata["otel"]["events"][0]["name"] == "exception"


def test_model_messages_recorded_as_events_are_read():
    (record,) = records_of(
        span(
            "chat",
            trace_id=new_trace_id(),
            attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
            events=[
                ("gen_ai.user.message", {"content": "hello"}),
                ("gen_ai.choice", {"message": json.dumps({"role": "assistant", "content": "hi"})}),
            ],
        )
    )
    assert record.input == {"messages": [{"role": "user", "content": "hello"}]}
    assert record.output["content"] == "hi"


def test_a_span_without_valid_ids_is_rejected_and_the_others_kept():
    tid = new_trace_id()
    good = span("good", trace_id=tid)
    bad = span("bad", trace_id=b"\x00" * 16)
    short = span("short", trace_id=tid, span_id=b"\x01\x02")
    decoded = request_to_records(request(good, bad, short))
    assert [r.name for r in decoded.records] == ["good"]
    assert decoded.rejected == 2
    assert "trace id" in decoded.problems[0]


def test_otlp_json_with_hex_ids_decodes_like_protobuf():
    tid, sid = new_trace_id(), new_span_id()
    req = request(span("s", trace_id=tid, span_id=sid, attrs={"n": 5}))
    body = json_format.MessageToDict(req)
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = tid.hex()
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = sid.hex()
    body["resourceSpans"][0]["unknownFutureField"] = 1  # receivers ignore unknown fields
    from_json = parse(json.dumps(body).encode(), kind="application/json")
    from_proto = parse(req.SerializeToString(), kind="application/x-protobuf")
    assert from_json == from_proto


@pytest.mark.parametrize(
    ("body", "kind", "needle"),
    [
        (b"\xff\xff\xff", "application/x-protobuf", "not an OTLP"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            "application/json",
            "not hex",
        ),
        (b'{"resourceSpans": 5}', "application/json", "not an OTLP"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body, kind, needle):
    with pytest.raises(IngestError) as info:
        parse(body, kind=kind)
    assert info.value.status == 400
    assert needle in str(info.value)


def test_content_types_other_than_protobuf_and_json_are_415():
    assert media_type("application/json; charset=utf-8") == "application/json"
    with pytest.raises(IngestError) as info:
        media_type("text/plain")
    assert info.value.status == 415


def test_gzip_is_inflated_but_never_past_the_limit():
    payload = b"x" * 10_000
    assert decompress(gzip.compress(payload), encoding="gzip", max_bytes=20_000) == payload
    with pytest.raises(IngestError) as too_big:
        decompress(gzip.compress(payload), encoding="gzip", max_bytes=5_000)
    assert too_big.value.status == 413
    with pytest.raises(IngestError) as broken:
        decompress(b"not gzip", encoding="gzip", max_bytes=5_000)
    assert broken.value.status == 400
    with pytest.raises(IngestError) as unknown:
        decompress(payload, encoding="br", max_bytes=20_000)
    assert unknown.value.status == 415


def test_values_no_database_can_store_are_made_storable():
    (record,) = records_of(
        span(
            "nul\x00name",
            trace_id=new_trace_id(),
            attrs={
                "text": "a\x00b",
                "huge": 10**18,
                "gen_ai.usage.input_tokens": 10**18,
                "nan": float("nan"),
                "llm.output_messages.0.message.tool_calls.x.tool_call.id": "ignored",
            },
        )
    )
    assert record.name == "nul\ufffdname"
    assert record.metadata["attributes"]["text"] == "a\ufffdb"
    assert record.metadata["attributes"]["nan"] == "nan"
    assert record.prompt_tokens == 2**31 - 1
    json.dumps(record.metadata, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "resourceSpans",
                        "scopeSpans",
                        "spans",
                        "traceId",
                        "spanId",
                        "attributes",
                        "key",
                        "value",
                        "stringValue",
                        "kvlistValue",
                        "values",
                        "name",
                        "x",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=30,
    )
)
def test_any_json_body_is_a_request_or_a_400(data):
    try:
        request_to_records(parse(json.dumps(data).encode(), kind="application/json"))
    except IngestError as exc:
        assert exc.status == 400


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_protobuf_body_is_a_request_or_a_400(body):
    try:
        request_to_records(parse(body, kind="application/x-protobuf"))
    except IngestError as exc:
        assert exc.status == 400


def test_openinference_retrieved_documents_and_multimodal_text_are_read():
    tid = new_trace_id()
    retriever, llm = records_of(
        span(
            "retrieve",
            trace_id=tid,
            attrs={
                "openinference.span.kind": "RETRIEVER",
                "input.value": "otlp",
                "retrieval.documents.0.document.id": "d1",
                "retrieval.documents.0.document.content": "OTLP is…",
                "retrieval.documents.0.document.score": 0.9,
                "retrieval.documents.1.document.id": "d2",
            },
        ),
        span(
            "llm",
            trace_id=tid,
            attrs={
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.contents.0.message_content.type": "text",
                "llm.input_messages.0.message.contents.0.message_content.text": "Describe ",
                "llm.input_messages.0.message.contents.1.message_content.text": "this",
            },
        ),
    )
    assert retriever.kind == "retriever"
    assert retriever.input == "otlp"
    assert retriever.output == {
        "documents": [{"id": "d1", "content": "OTLP is…", "score": 0.9}, {"id": "d2"}]
    }
    assert llm.input == {"messages": [{"role": "user", "content": "Describe this"}]}
