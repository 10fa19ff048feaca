"""Token usage: per run in `finish`, per user and month in `/v1/cli/credits`, and the usage limit."""
from __future__ import annotations

from tests.support.standins.anthropic import Reply


def usage_reply(text, i, o, cr=0, cc=0):
    return Reply.text(text, input_tokens=i, output_tokens=o, cache_read_input_tokens=cr,
                      cache_creation_input_tokens=cc)


async def test_credits_add_up_every_model_call(service, alice, bob):
    service.anthropic.script(
        usage_reply("one", 100, 7, 11, 13),
        Reply.tool_use("execute_bash_local", {"command": "true"}, input_tokens=200, output_tokens=9,
                       cache_read_input_tokens=17, cache_creation_input_tokens=19),
        usage_reply("two", 300, 5, 23, 29),
    )
    sid = await alice.create_session()
    t1 = await alice.turn(sid, "first")
    t2 = await alice.turn(sid, "second", tools=lambda tool, args: {"stdout": "", "stderr": "", "exit_code": 0})
    assert t1.terminal["usage"] == {"promptTokens": 100, "completionTokens": 7, "totalTokens": 107}
    assert t2.terminal["usage"]["promptTokens"] == 500
    assert t2.terminal["usage"]["completionTokens"] == 14
    r = await alice.get("/v1/cli/credits")
    assert r.status == 200
    assert (r.body["input_tokens"], r.body["output_tokens"]) == (600, 21)
    assert (r.body["cache_read_tokens"], r.body["cache_creation_tokens"]) == (51, 61)
    assert r.body["org_credits_enabled"] is False
    other = (await bob.get("/v1/cli/credits")).body
    assert (other["input_tokens"], other["output_tokens"]) == (0, 0)


async def test_usage_of_a_failed_run_is_counted(service, alice):
    service.anthropic.script(Reply.stream_error("partial ", input_tokens=40, output_tokens=3))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "x")
    assert turn.terminal["type"] == "error"
    r = await alice.get("/v1/cli/credits")
    assert r.body["input_tokens"] == 40


async def test_usage_limit_answers_429_with_detail(make_service, sentinels):
    svc = await make_service(monthly_token_limit=150)
    alice = svc.cli(sentinels.alice_token)
    svc.anthropic.script(usage_reply("big answer", 120, 40))
    sid = await alice.create_session()
    await alice.turn(sid, "first")
    r = await alice.send(sid, "second")
    assert r.status == 429, r.text
    assert r.detail  # the CLI shows `detail` verbatim
    assert len(svc.anthropic.message_requests) == 1
    bob = svc.cli(sentinels.bob_token)  # the limit is per user
    bsid = await bob.create_session()
    assert (await bob.turn(bsid, "hi")).terminal["type"] == "finish"
