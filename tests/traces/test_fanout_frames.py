"""Live frames (traces.fanout.Batch): events that arrived together go out as one frame,
cut at FRAME_BYTES between events (Daphne refuses a message over 1 MiB whole), never
inside one: a step and the call it ends stay together."""

from __future__ import annotations

import json
import uuid

from traces.broadcast import trace_group
from traces.events import step_event
from traces.fanout import FRAME_BYTES, Batch, Event
from traces.models import Step

TRACE = uuid.uuid4()


def event(seq: int, *, size: int = 10, ended_call: str = "") -> Event:
    step = Step(trace_id=TRACE, seq=seq, kind="tool_result", name="t", output={"text": "x" * size})
    data = step_event(step=step, totals={"steps": seq}, ended_call=ended_call)
    data["committed_at"] = 1.0
    checked = Event.check(json.loads(json.dumps(data, default=str)), group=trace_group(TRACE))
    assert checked is not None
    return checked


def seqs(frames) -> list[list[int]]:
    """The step numbers in each frame, checked against the last one it says it carries."""
    out = []
    for frame, last in frames:
        data = json.loads(frame.text)
        events = data["events"] if data["type"] == "events" else [data]
        out.append([e["seq"] for e in events if e["type"] == "step"])
        assert last == (out[-1][-1] if out[-1] else None)
    return out


def test_a_small_batch_is_one_frame():
    frames = Batch([event(1), event(2), event(3)]).frames(as_json=True)
    assert seqs(frames) == [[1, 2, 3]]
    assert len(Batch([event(1)]).frames(as_json=False)) == 1


def test_a_big_batch_is_cut_between_events_into_bounded_frames():
    big = FRAME_BYTES // 3
    batch = Batch([event(n, size=big) for n in range(1, 9)])
    frames = batch.frames(as_json=True)
    assert len(frames) == 4  # two events a frame
    assert all(len(f.text.encode()) <= FRAME_BYTES for f, _ in frames)
    assert sum(seqs(frames), []) == list(range(1, 9))
    assert batch.frames(as_json=True) is frames  # built once for every socket
    # A page's rows leave the outputs out: small, so one frame, the same rows.
    html = "".join(f.text for f, _ in batch.frames(as_json=False))
    assert html == "".join(e.html() for e in batch.events)


def test_an_event_bigger_than_a_frame_goes_whole_with_the_call_it_ends():
    huge = event(2, size=FRAME_BYTES + 1000, ended_call="call-2")
    frames = Batch([event(1), huge, event(3)]).frames(as_json=True)
    assert seqs(frames) == [[1], [2], [3]]
    middle = json.loads(frames[1][0].text)
    assert [e["type"] for e in middle["events"]] == ["step", "call.ended"]
    assert middle["events"][1]["call"] == {"id": "call-2"}
