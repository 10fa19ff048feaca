"""LangSmith: each turn is a run with the model call as a child run, session and user ids as metadata,
no secrets, posted once the turn ended or ran a second (a turn in progress is visible), with its own
times; tracing off sends nothing; a LangSmith outage never fails a turn."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.support.cli import eventually, run_bash, start_held_turn


def finished(runs):
    return [r for r in runs if r.get("end_time")]


async def test_turn_is_traced_with_child_model_runs(service, alice):
    sid = await alice.create_session()
    turn = await alice.turn(sid, "please run `echo traced-SENTINEL`", tools=run_bash)
    assert turn.terminal["type"] == "finish"
    ls = service.langsmith

    def complete(runs):
        roots = [r for r in finished(runs) if not r.get("parent_run_id")]
        return any(len([c for c in finished(runs) if str(c.get("parent_run_id")) == str(root["id"])]) >= 2
                   for root in roots)

    assert ls.wait_for_runs(complete), f"runs received: {[(r.get('name'), r.get('parent_run_id')) for r in ls.all_runs()]}"
    [root] = [r for r in ls.root_runs() if r.get("end_time")]
    children = ls.children(root["id"])
    llm_children = [c for c in children if c.get("run_type") == "llm"]
    assert len(llm_children) == 2  # one per model call: before and after the tool result
    meta = (root.get("extra") or {}).get("metadata") or {}
    flat = json.dumps(meta)
    assert sid in flat
    assert str(service.platform.user_for(service.sentinels.alice_token)["id"]) in flat
    assert "traced-SENTINEL" in json.dumps(root.get("inputs"))
    service.sentinels.assert_absent(ls.all_bytes(), "what was sent to LangSmith")


async def test_trace_carries_no_secrets(service, alice):
    sid = await alice.create_session()
    await alice.turn(sid, "hello")
    assert service.langsmith.wait_for_runs(lambda runs: len(finished(runs)) >= 2)
    service.sentinels.assert_absent(service.langsmith.all_bytes(), "what was sent to LangSmith")
    for rec in service.langsmith.requests:
        for name, value in rec.headers.items():
            if name.lower() != "x-api-key":
                service.sentinels.assert_absent(value, f"LangSmith request header {name}")


async def test_without_langchain_key_nothing_is_sent(make_service, sentinels):
    svc = await make_service(env_overrides={"LANGCHAIN_API_KEY": ""})
    alice = svc.cli(sentinels.alice_token)
    sid = await alice.create_session()
    assert (await alice.turn(sid, "hello")).terminal["type"] == "finish"
    await svc.stop()  # shutting down flushes whatever a tracer had queued
    assert svc.langsmith.requests == []


@pytest.mark.parametrize("mode", ["refuse", "5xx"])
async def test_langsmith_down_never_fails_a_turn(service, alice, mode):
    service.langsmith.go_down(mode)
    sid = await alice.create_session()
    t1 = await alice.turn(sid, "please run `echo still-works`", tools=run_bash)
    t2 = await alice.turn(sid, "and again")
    assert t1.terminal["type"] == t2.terminal["type"] == "finish"
    assert "still-works" in t1.text
    # Back up before teardown, so the shutdown flush delivers what was queued and the langsmith SDK has
    # nothing left to retry (and report) at interpreter exit.
    service.langsmith.come_up()


async def test_a_turn_in_progress_is_traced_with_its_own_times(service, alice):
    # A turn's trace is held back until it ends (off the path to its first token), or until it has run
    # tracing.HOLD_S: a turn that goes on is posted while it streams. The times are those of the turn and
    # its model call, not of the posting.
    held = await start_held_turn(alice, service.anthropic, "an answer held open after one word", hold_after=1)
    ls = service.langsmith

    def turn_and_model(runs):
        """This turn's root run and its model call (an MCP tools/list child may be there too)."""
        roots = [r for r in runs if not r.get("parent_run_id")
                 and held.sid in json.dumps((r.get("extra") or {}).get("metadata") or {})]
        return roots + [r for r in runs if r.get("run_type") == "llm"
                        and any(str(r.get("parent_run_id")) == str(root["id"]) for root in roots)]

    # Polled, not ls.wait_for_runs: that blocks this loop, which also runs the service and its timer.
    await eventually(lambda: turn_and_model(ls.all_runs()),
                     lambda mine: len(mine) == 2 and not any(r.get("end_time") for r in mine),
                     what="the turn in progress and its model call in LangSmith")
    service.anthropic.release()
    await held.stream.until_type("finish")
    assert ls.wait_for_runs(lambda runs: all(r.get("end_time") for r in turn_and_model(runs)))
    root, model = turn_and_model(ls.all_runs())
    times = [datetime.fromisoformat(str(t).replace("Z", "+00:00"))
             for t in (root["start_time"], model["start_time"], model["end_time"], root["end_time"])]
    assert times == sorted(times), times
