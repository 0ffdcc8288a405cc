"""Tooltrail SDK: record the model calls and tool calls of any Python agent.

Standard library and ``httpx`` only. Spans go to Tooltrail's OTLP endpoint
(``POST /v1/traces``, OTLP/JSON) with OpenTelemetry GenAI attributes, so Tooltrail
shows them like any other OpenTelemetry trace::

    from tooltrail_sdk import Tooltrail

    tt = Tooltrail("http://127.0.0.1:8000", token="tt_...", service="my-agent")

    @tt.tool
    def get_weather(city: str) -> dict:
        return {"temp_c": 18}

    with tt.trace("weather", input="Weather in Paris?") as run:
        with tt.model_call("gpt-4o", messages=[{"role": "user", "content": "..."}]) as call:
            call.output(content="", tool_calls=[{"id": "c1", "name": "get_weather",
                                                  "arguments": '{"city": "Paris"}'}])
            call.usage(input_tokens=12, output_tokens=7)
        get_weather("Paris")
        run.output("18 °C in Paris")
    tt.close()

See docs/sdk.md.
"""

from .client import Span, Tooltrail

__all__ = ["Span", "Tooltrail"]
