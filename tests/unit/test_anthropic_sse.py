"""The model's stream decoded without the SDK's models: anthropic_sse.SseDecoder (bytes to server-sent
events) and StepState.apply (events to what a model call produced)."""
from __future__ import annotations

import json

import pytest

from agent_backend.anthropic_sse import SseDecoder, StepState, StreamErrorEvent
from agent_backend.usage import Usage


def sse(event: str, data: dict | str) -> bytes:
    body = data if isinstance(data, str) else json.dumps(data)
    return f"event: {event}\ndata: {body}\n\n".encode()


def text_stream(*chunks: str, stop_reason: str = "end_turn") -> bytes:
    return b"".join([
        sse("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 3,
                      "cache_creation_input_tokens": None}}}),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
        sse("ping", {"type": "ping"}),
        *(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": c}}) for c in chunks),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                              "usage": {"output_tokens": 7}}),
        sse("message_stop", {"type": "message_stop"}),
    ])


class Run:
    """A StepState fed a whole body, in chunks of `size` bytes, recording the callbacks."""

    def __init__(self, body: bytes, size: int = 1 << 20):
        self.state, self.texts, self.thoughts, self.stopped = StepState(), [], [], False
        decoder = SseDecoder()
        for i in range(0, len(body), size):
            for event, data in decoder.feed(body[i:i + size]):
                if self.state.apply(event, data, self.texts.append, self.thoughts.append):
                    self.stopped = True
        for event, data in decoder.end():
            self.stopped = self.state.apply(event, data, self.texts.append, self.thoughts.append) or self.stopped


class TestDecoder:
    @pytest.mark.parametrize("size", [1, 2, 7, 1 << 20])
    def test_should_cut_events_wherever_the_chunks_end(self, size):
        body = sse("a", "1") + b": a comment\n" + sse("b", "2")
        decoder, events = SseDecoder(), []
        for i in range(0, len(body), size):
            events += decoder.feed(body[i:i + size])
        assert events == [("a", b"1"), ("b", b"2")]

    @pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
    @pytest.mark.parametrize("size", [1, 3, 1 << 20])
    def test_should_accept_every_line_ending(self, newline, size):
        body = newline.join([b"event: x", b"data: {}", b"", b"event:y", b"data:2", b"", b""])
        decoder, events = SseDecoder(), []
        for i in range(0, len(body), size):
            events += decoder.feed(body[i:i + size])
        events += decoder.end()
        assert events == [("x", b"{}"), ("y", b"2")]

    def test_should_join_data_lines_and_drop_other_fields(self):
        events = SseDecoder().feed(b"id: 4\nretry: 10\nevent: e\ndata: one\ndata: two\nfoo: bar\n\n")
        assert events == [("e", b"one\ntwo")]

    def test_should_give_data_without_an_event_name_as_none(self):
        assert SseDecoder().feed(b"data: x\n\n") == [(None, b"x")]

    def test_should_never_return_an_event_the_body_did_not_finish(self):
        decoder = SseDecoder()
        assert decoder.feed(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n") == []
        assert decoder.end() == []


class TestStepState:
    def test_should_collect_text_usage_and_stop_reason(self):
        run = Run(text_stream("Hello", ", ", "world"))
        assert run.stopped
        assert run.texts == ["Hello", ", ", "world"]
        assert run.state.complete_blocks() == [{"type": "text", "text": "Hello, world"}]
        assert run.state.started and run.state.stop_reason == "end_turn"
        assert run.state.usage == Usage(input_tokens=12, output_tokens=7, cache_read_tokens=3)

    @pytest.mark.parametrize("size", [1, 5, 64])
    def test_should_not_depend_on_how_the_body_is_chunked(self, size):
        whole, chunked = Run(text_stream("a", "é", "c")), Run(text_stream("a", "é", "c"), size)
        assert (chunked.texts, chunked.state) == (whole.texts, whole.state)

    def test_should_build_a_tool_call_from_its_json_deltas(self):
        body = b"".join([
            sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_1", "name": "read_file_local", "input": {}}}),
            *(sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                          "delta": {"type": "input_json_delta", "partial_json": part}})
              for part in ('{"pa', 'th": "a.txt"', "}")),
        ])
        run = Run(body)
        assert run.state.complete_blocks() == []  # open until its content_block_stop
        run2 = Run(body + sse("content_block_stop", {"type": "content_block_stop", "index": 1}))
        assert run2.state.complete_blocks() == [{"type": "tool_use", "id": "toolu_1", "name": "read_file_local",
                                                 "input": {"path": "a.txt"}}]
        assert run2.texts == []

    def test_should_mark_a_tool_call_whose_input_is_not_json(self):
        run = Run(b"".join([
            sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": "t", "name": "n"}}),
            sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "input_json_delta", "partial_json": '{"a": '}}),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]))
        assert run.state.blocks == [{"type": "tool_use", "id": "t", "name": "n", "input": {}, "_bad_json": True}]

    def test_should_keep_thinking_with_its_signature(self):
        run = Run(b"".join([
            sse("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "thinking", "thinking": ""}}),
            sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "thinking_delta", "thinking": "Let me see."}}),
            sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "signature_delta", "signature": "sig=="}}),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]))
        assert run.thoughts == ["Let me see."] and run.texts == []
        assert run.state.complete_blocks() == [{"type": "thinking", "thinking": "Let me see.", "signature": "sig=="}]

    def test_should_keep_server_blocks_out_of_what_is_sent_back(self):
        run = Run(b"".join([
            sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
            sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]))
        run.state.drop_skipped()
        assert run.state.blocks == [] and run.state.started

    def test_should_ignore_pings_unknown_events_and_deltas_of_unknown_blocks(self):
        run = Run(b"".join([
            sse("ping", {"type": "ping"}), sse("something_new", {"type": "something_new", "x": 1}),
            b"data: {\"type\": \"message_stop\"}\n\n",  # no event name: skipped, as by the SDK
            sse("content_block_delta", {"type": "content_block_delta", "index": 5,
                                        "delta": {"type": "text_delta", "text": "lost"}}),
            sse("content_block_stop", {"type": "content_block_stop", "index": 5}),
            b"event: message_delta\ndata: \n\n",  # no data: skipped
        ]))
        assert (run.stopped, run.texts, run.state) == (False, [], StepState())

    def test_should_raise_an_error_event_with_its_body(self):
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        run = Run(text_stream("partial"))
        with pytest.raises(StreamErrorEvent) as caught:
            run.state.apply("error", json.dumps(body).encode(), run.texts.append, run.thoughts.append)
        assert caught.value.body == body and caught.value.message == str(body)

    def test_should_raise_an_error_event_whose_data_is_not_json_with_its_text(self):
        with pytest.raises(StreamErrorEvent) as caught:
            StepState().apply("error", b"upstream exploded", print, print)
        assert (caught.value.body, caught.value.message) == ("upstream exploded", "upstream exploded")

    def test_should_start_over_on_reset(self):
        run = Run(text_stream("x"))
        run.state.reset()
        assert (run.state.blocks, run.state.partial_json, run.state.index_map) == ([], {}, {})
