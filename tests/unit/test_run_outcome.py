"""How a run's end is told: runs.Outcome and usage.Usage."""
from __future__ import annotations

import pytest

from agent_backend.events import SHUTDOWN_MESSAGE
from agent_backend.runs import Outcome
from agent_backend.usage import Usage


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [
    ("end_turn", "stop"), (None, "stop"), ("max_tokens", "length"), ("refusal", "content-filter"),
    ("model_context_window_exceeded", "length"), ("something_new", "other")])
def test_a_finished_turn_says_why_in_the_ai_sdk_words(stop_reason, finish_reason):
    outcome = Outcome.finished(stop_reason)
    assert (outcome.status, outcome.finish_reason, outcome.error) == ("completed", finish_reason, None)
    assert outcome.terminal == {"type": "finish", "finishReason": finish_reason}


def test_a_failed_turn_tells_the_client_its_error():
    outcome = Outcome.failed("model provider unreachable")
    assert (outcome.status, outcome.error) == ("error", "model provider unreachable")
    assert outcome.terminal == {"type": "error", "error": "model provider unreachable"}
    assert outcome.final_part(Usage(5, 5)) == outcome.terminal  # usage only on a finish


def test_a_user_cancel_finishes_and_a_shutdown_interrupts():
    assert Outcome.cancelled("user") == Outcome("cancelled", "cancelled",
                                                terminal={"type": "finish", "finishReason": "cancelled"})
    shutdown = Outcome.cancelled("shutdown")
    assert (shutdown.status, shutdown.terminal) == ("interrupted", {"type": "error", "error": SHUTDOWN_MESSAGE})


def test_the_finish_part_carries_the_runs_usage():
    part = Outcome.finished("end_turn").final_part(Usage(input_tokens=12, output_tokens=30, cache_read_tokens=7))
    assert part == {"type": "finish", "finishReason": "stop",
                    "usage": {"promptTokens": 12, "completionTokens": 30, "totalTokens": 42}}
    assert Outcome("error", tail={"type": "error"}).final_part(Usage()) is None


def test_usage_adds_up_and_reads_rows():
    total = Usage(1, 2, 3, 4) + Usage(10, 20, 30, 40)
    assert total.as_dict() == {"input_tokens": 11, "output_tokens": 22, "cache_read_tokens": 33,
                               "cache_creation_tokens": 44}
    assert total.total == 33
    assert not Usage() and Usage(output_tokens=1)
    assert Usage.of((5, None, "7", 0)) == Usage(5, 0, 7, 0)
    assert Usage.of(()) == Usage()
