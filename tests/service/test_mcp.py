"""Seqera MCP through the service: the user's own Platform as tools the model calls, run on the service
with the caller's token, against a real MCP server (the SDK's own, tests/support/standins/mcp.py)."""
from __future__ import annotations

import asyncio

import pytest

from agent_backend.context import CTX
from tests.support.cli import eventually, run_bash
from tests.support.standins.anthropic import Reply, offered_tools, tool_result_text, tool_results
from tests.support.standins.mcp import Call, McpStandIn

LIST = "mcp__seqera__platform_list_workflows"
LAUNCH = "mcp__seqera__platform_launch_workflow"


@pytest.fixture
async def service(make_service, mcp):
    return await make_service(env_overrides={"SEQERA_MCP_URL": mcp.url})


def system_of(request) -> str:
    system = request.json["system"]
    return system if isinstance(system, str) else " ".join(b["text"] for b in system)


async def test_a_platform_question_is_answered_with_the_users_own_data(service, alice, mcp):
    service.anthropic.script(Reply.tool_use(LIST, {"workspace": "acme/prod"}), Reply.text("One run failed."))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "Which of my runs failed last night?", tools=run_bash)

    assert turn.text == "One run failed."
    assert "execute-local" not in turn.types  # run on the service: the CLI posts nothing back
    [call] = [p for p in turn.parts if p["type"] == "tool-call"]
    [result] = [p for p in turn.parts if p["type"] == "tool-result"]
    assert (call["toolName"], call["args"]) == (LIST, {"workspace": "acme/prod"})
    assert result["toolCallId"] == call["toolCallId"] and "alice_rnaseq_nightly" in result["result"]
    assert mcp.calls == [Call("alice", "platform_list_workflows", {"workspace": "acme/prod"})]

    first, second = service.anthropic.message_requests
    offered = offered_tools(first)
    assert {LIST, "mcp__seqera__search_nfcore_module", "mcp__seqera__search_seqera_api"} <= offered
    assert "execute_bash_local" in offered  # beside the local tools
    assert "mcp__seqera__platform_" in system_of(first) or "mcp__seqera__*" in system_of(first)
    [block] = tool_results(second)
    assert block["tool_use_id"] == call["toolCallId"] and not block.get("is_error")
    assert "alice_rnaseq_nightly" in tool_result_text(block)


async def test_the_call_is_part_of_the_conversation_history(service, alice):
    service.anthropic.script(Reply.tool_use(LIST, {"workspace": "acme/prod"}), Reply.text("One run failed."),
                             Reply.text("It was the nightly one."))
    sid = await alice.create_session()
    await alice.turn(sid, "Which runs failed?", tools=run_bash)
    await alice.turn(sid, "Which one was it?", tools=run_bash)
    resumed = service.anthropic.message_requests[-1].json["messages"]
    assert "alice_rnaseq_nightly" in str(resumed)  # the model sees the earlier result
    history = await alice.open_events(sid, cursor=0, history_only=True)
    await history.read_to_end()
    kinds = [(p["type"], p.get("toolName")) for p in history.parts() if p.get("type") in ("tool-call", "tool-result")]
    assert kinds == [("tool-call", LIST), ("tool-result", None)]  # what -c and -s show


async def test_a_tool_error_reaches_the_model_as_an_error(service, alice, mcp):
    service.anthropic.script(Reply.tool_use("mcp__seqera__platform_get_compute_env", {"name": "aws"}),
                             Reply.text("That compute environment is broken."))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "Is my compute environment fine?", tools=run_bash)
    assert turn.terminal["type"] == "finish"
    [block] = tool_results(service.anthropic.message_requests[1])
    assert block["is_error"] is True


async def deny(tool: str, args: dict) -> dict:
    """What CLI 1.12.0 posts when the user answers "No, reject" to an approval."""
    return {"stdout": "", "stderr": "Operation blocked: user denied approval", "exit_code": 1}


async def test_a_tool_that_changes_state_runs_once_the_user_says_yes(service, alice, mcp):
    service.anthropic.script(Reply.tool_use(LAUNCH, {"pipeline": "nf-core/rnaseq", "workspace": "acme/prod"}),
                             Reply.text("Launched."))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "Launch nf-core/rnaseq", tools=run_bash)  # the CLI's yes: "Unknown tool"
    assert LAUNCH in offered_tools(service.anthropic.message_requests[0])
    [asked] = turn.tool_calls  # the approval: an execute-local the CLI asks the user about
    assert (asked["toolName"], asked["args"]) == (LAUNCH, {"pipeline": "nf-core/rnaseq", "workspace": "acme/prod"})
    assert mcp.calls == [Call("alice", "platform_launch_workflow",
                              {"pipeline": "nf-core/rnaseq", "workspace": "acme/prod"})]
    [result] = [p for p in turn.parts if p["type"] == "tool-result"]
    assert "alice-launched" in result["result"]
    [block] = tool_results(service.anthropic.message_requests[1])
    assert not block.get("is_error") and "alice-launched" in tool_result_text(block)


async def test_a_no_reaches_the_model_as_a_refusal_and_nothing_is_called(service, alice, mcp):
    service.anthropic.script(Reply.tool_use(LAUNCH, {"pipeline": "nf-core/rnaseq", "workspace": "acme/prod"}),
                             Reply.text("Not launched, as you wish."))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "Launch nf-core/rnaseq", tools=deny)
    assert turn.terminal["type"] == "finish"
    assert mcp.calls == []
    [block] = tool_results(service.anthropic.message_requests[1])
    assert block["is_error"] is True and "the user declined it" in tool_result_text(block)


async def test_without_local_execution_no_tool_that_changes_state_is_offered(service, alice, mcp):
    service.anthropic.script(Reply.text("read-only it is"))
    sid = await alice.create_session(local_execution=False)  # nothing could ask the user's approval
    await alice.turn(sid, "hi")
    offered = offered_tools(service.anthropic.message_requests[0])
    assert LIST in offered and LAUNCH not in offered and "execute_bash_local" not in offered


async def test_plan_mode_offers_only_read_only_tools(service, alice, mcp):
    service.anthropic.script(Reply.tool_use(LAUNCH, {"pipeline": "nf-core/rnaseq", "workspace": "w"}),
                             Reply.text("Here is the plan."))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "Plan a launch", tools=run_bash, mode="plan")
    offered = offered_tools(service.anthropic.message_requests[0])
    assert LIST in offered and LAUNCH not in offered
    [result] = [p for p in turn.parts if p["type"] == "tool-result"]
    assert "not allowed in plan mode" in result["result"]
    assert mcp.calls == []


async def test_two_users_at_once_see_only_their_own_data(service, alice, bob, mcp):
    # Unscripted: the stand-in model answers each conversation by itself (it calls the tool for "runs in
    # workspace `w`", then quotes the result), so the two turns cannot take each other's replies.
    async def ask(cli):
        sid = await cli.create_session()
        turn = await cli.turn(sid, "Which of my runs in workspace `w` failed?", tools=run_bash)
        return [p["result"] for p in turn.parts if p["type"] == "tool-result"]

    for_alice, for_bob = await asyncio.gather(ask(alice), ask(bob))
    assert "alice_" in for_alice[0] and "bob_" not in for_alice[0]
    assert "bob_" in for_bob[0] and "alice_" not in for_bob[0]
    assert sorted(c.user for c in mcp.calls) == ["alice", "bob"]


async def test_a_turn_without_a_call_costs_no_mcp_request_while_the_list_is_cached(service, alice, mcp):
    service.anthropic.script(Reply.text("first"), Reply.text("second"))
    await alice.turn(await alice.create_session(), "hello", tools=run_bash)
    await eventually(lambda: service.app[CTX].mcp.open_connections == 0, what="the first run's MCP session closed")
    before = mcp.requests
    await alice.turn(await alice.create_session(), "hello again", tools=run_bash)
    assert LIST in offered_tools(service.anthropic.message_requests[-1])  # alice's tools, from the cache
    assert mcp.requests == before  # no handshake, no tools/list


async def test_the_meta_tool_shape_works_too(service, alice, mcp):
    call_args = {"service": "platform", "api_name": "list_workflows", "parameters": {"workspace": "w"}}
    service.anthropic.script(Reply.tool_use("mcp__seqera__search_seqera_api", {"query": "failed runs"}),
                             Reply.tool_use("mcp__seqera__call_seqera_api", call_args), Reply.text("done"))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "which runs failed?", tools=run_bash)  # the call needs the user's yes
    assert [p["toolName"] for p in turn.tool_calls] == ["mcp__seqera__call_seqera_api"]
    assert [(c.tool, c.args) for c in mcp.calls] == [("search_seqera_api", {"query": "failed runs"}),
                                                      ("call_seqera_api", call_args)]


@pytest.mark.parametrize("trouble", ["refuse", "5xx", "hang"])
async def test_mcp_trouble_never_takes_a_run_down(make_service, mcp, trouble, caplog):
    service = await make_service(env_overrides={"SEQERA_MCP_URL": mcp.url}, mcp_connect_timeout=1.0,
                                 mcp_list_timeout=1.0)
    await asyncio.to_thread(mcp.go_down, trouble)  # in a thread: the service runs on this test's loop
    alice = service.cli(service.sentinels.alice_token)
    service.anthropic.script(Reply.tool_use("execute_bash_local", {"command": "echo local"}), Reply.text("done"),
                             Reply.text("again"))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "which runs failed?", tools=run_bash)
    assert turn.text == "done" and turn.terminal["type"] == "finish"  # the local tools still work
    first = service.anthropic.message_requests[0]
    assert not any(n.startswith("mcp__") for n in offered_tools(first))
    assert "Seqera Platform tools are unavailable" in system_of(first)
    await alice.turn(sid, "and now?", tools=run_bash)
    warnings = [r for r in caplog.records if r.getMessage() == "Seqera MCP unavailable"]
    assert len(warnings) == 1  # logged once, when it started
    await asyncio.to_thread(mcp.come_up)
    await eventually(lambda: service.app[CTX].mcp.open_connections == 0, what="no MCP connection left open")


async def test_a_token_mcp_rejects_is_told_to_the_model(service, alice, mcp, platform_standin):
    service.anthropic.script(Reply.text("warm-up"), Reply.text("no platform"))
    sid = await alice.create_session()  # the service checked alice's token (and caches it for a minute)
    platform_standin.remove_user(service.sentinels.alice_token)  # MCP, which asks Platform, now says 401
    await alice.turn(sid, "hi", tools=run_bash)
    assert "rejected the access token (HTTP 401)" in system_of(service.anthropic.message_requests[0])


@pytest.mark.parametrize("legacy", [False, True], ids=["2026-protocol", "2025-stateful-session"])
async def test_a_server_restart_mid_run_reconnects_once(make_service, platform_standin, legacy):
    mcp = McpStandIn(platform_standin, legacy=legacy).start()
    try:
        await restart_mid_run(await make_service(env_overrides={"SEQERA_MCP_URL": mcp.url}), mcp)
    finally:
        await asyncio.to_thread(mcp.stop)


async def restart_mid_run(service, mcp):
    alice = service.cli(service.sentinels.alice_token)
    # The second model reply holds after its text until released: the run makes its second call only once
    # the server has restarted (not while it is down).
    service.anthropic.script(Reply.tool_use(LIST, {"workspace": "w"}),
                             Reply.tool_use(LIST, {"workspace": "w"}, text="Again. ", hold_after=1),
                             Reply.text("both listed"))

    sid = await alice.create_session()
    stream = await alice.open_events(sid)
    assert (await alice.send(sid, "list twice")).status == 200
    await stream.until(lambda e: e.type == "tool-result")
    assert await asyncio.to_thread(service.anthropic.wait_held, 60), "the second model call never held"
    await asyncio.to_thread(mcp.go_down, "refuse")
    await asyncio.to_thread(mcp.come_up)  # a new server: the run's MCP session is gone
    service.anthropic.release()
    await alice.follow(sid, stream, tools=run_bash)
    await stream.close()
    results = [p["result"] for p in stream.parts() if p["type"] == "tool-result"]
    assert len(results) == 2 and all("alice_rnaseq_nightly" in r for r in results)
    assert stream.parts()[-1]["type"] == "finish"
    assert len(mcp.calls) == 2


async def test_the_token_goes_to_mcp_only(service, alice, mcp, caplog):
    service.anthropic.script(Reply.tool_use(LIST, {"workspace": "w"}), Reply.text("ok"))
    sid = await alice.create_session()
    await alice.turn(sid, "my runs?", tools=run_bash)
    service.sentinels.assert_absent(caplog.text, "the service's log")
    for request in service.anthropic.message_requests:
        service.sentinels.assert_absent(request.body, "a model request")
    with service.db.connect() as conn, conn.cursor() as cur:
        for table in ("sessions", "messages", "runs", "events", "token_usage", "run_requests"):
            cur.execute(f"SELECT * FROM {table}")
            service.sentinels.assert_absent(repr(cur.fetchall()), f"table {table}")


async def test_without_seqera_mcp_url_there_are_no_platform_tools(make_service, env):
    service = await make_service(env_overrides={"SEQERA_MCP_URL": ""})
    alice = service.cli(service.sentinels.alice_token)
    service.anthropic.script(Reply.text("local only"))
    sid = await alice.create_session()
    await alice.turn(sid, "hi", tools=run_bash)
    first = service.anthropic.message_requests[0]
    assert not any(n.startswith("mcp__") for n in offered_tools(first))
    assert "Seqera Platform tools" not in system_of(first)


async def test_each_list_and_call_is_a_child_run_in_langsmith(service, alice, mcp):
    service.anthropic.script(Reply.tool_use(LIST, {"workspace": "w"}),
                             Reply.tool_use("mcp__seqera__platform_get_compute_env", {"name": "aws"}), Reply.text("ok"))
    sid = await alice.create_session()
    await alice.turn(sid, "my runs and my compute env?", tools=run_bash)
    ls = service.langsmith
    wanted = {"mcp.tools/list", "mcp.platform_list_workflows", "mcp.platform_get_compute_env"}

    def traced(runs):
        ended = [r for r in runs if r.get("end_time")]
        return wanted <= {r.get("name") for r in ended} and any(not r.get("parent_run_id") for r in ended)

    # In a thread: the service runs on this test's event loop.
    seen = await asyncio.to_thread(ls.wait_for_runs, traced)
    assert seen, [(r.get("name"), r.get("end_time")) for r in ls.all_runs()]
    [root] = [r for r in ls.root_runs() if r.get("end_time")]
    children = {c["name"]: c for c in ls.children(root["id"])}
    assert wanted <= set(children)
    assert not children["mcp.platform_list_workflows"].get("error")
    assert children["mcp.platform_get_compute_env"].get("error")  # the error flag
    assert children["mcp.platform_list_workflows"]["start_time"] and children["mcp.platform_list_workflows"]["end_time"]
    service.sentinels.assert_absent(ls.all_bytes(), "what was sent to LangSmith")


async def test_a_cancel_during_a_call_ends_the_run_and_closes_the_mcp_session(service, alice, mcp):
    service.anthropic.script(Reply.tool_use("mcp__seqera__platform_wait_for_workflow", {"workflow_id": "wf-1"}),
                             Reply.text("never"))
    sid = await alice.create_session()
    stream = await alice.open_events(sid)
    assert (await alice.send(sid, "wait for my run")).status == 200
    await eventually(lambda: [c.tool for c in mcp.calls], what="the call to reach MCP")
    assert (await alice.cancel(sid)).status == 200
    await stream.until_type("finish")
    await stream.close()
    assert stream.parts()[-1] == {**stream.parts()[-1], "type": "finish", "finishReason": "cancelled"}
    await eventually(lambda: service.app[CTX].mcp.open_connections == 0, what="the MCP session to be closed")


async def test_a_call_that_times_out_is_not_repeated_and_says_whether_it_may_have_taken_effect(make_service, mcp):
    service = await make_service(env_overrides={"SEQERA_MCP_URL": mcp.url}, mcp_call_timeout=0.5)
    alice = service.cli(service.sentinels.alice_token)
    service.anthropic.script(Reply.tool_use("mcp__seqera__platform_wait_for_workflow", {"workflow_id": "wf-1"}),
                             Reply.tool_use(LAUNCH, {"pipeline": "nf-core/rnaseq", "workspace": "slow"}),
                             Reply.text("done"))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "wait, then launch", tools=run_bash)
    waited, launched = [p["result"] for p in turn.parts if p["type"] == "tool-result"]
    assert "did not answer within 0.5 s" in waited and "could not be completed" in waited
    assert "may have taken effect" in launched
    assert [c.tool for c in mcp.calls] == ["platform_wait_for_workflow", "platform_launch_workflow"]  # once each
    assert turn.terminal["type"] == "finish"


async def test_runs_of_one_token_starting_together_share_one_tool_list(service, alice, mcp):
    async def ask():
        await alice.turn(await alice.create_session(), "hello", tools=run_bash)

    await asyncio.gather(ask(), ask(), ask())
    assert mcp.list_requests == 1
    assert await eventually(lambda: service.app[CTX].mcp.listing == {}, what="no list left in flight")


async def test_a_later_turn_without_tools_gets_the_earlier_calls_as_text(make_service, mcp):
    service = await make_service(env_overrides={"SEQERA_MCP_URL": mcp.url}, mcp_tools_ttl=0.0)  # list each turn
    alice = service.cli(service.sentinels.alice_token)
    service.anthropic.script(Reply.tool_use(LIST, {"workspace": "w"}), Reply.text("one failed"), Reply.text("ok"))
    sid = await alice.create_session(local_execution=False)
    await alice.turn(sid, "my runs?")
    await asyncio.to_thread(mcp.go_down, "refuse")  # no Platform tools on the next turn: no tools at all
    await alice.turn(sid, "and now?")
    last = service.anthropic.message_requests[-1].json
    assert not last.get("tools")
    blocks = [b for m in last["messages"] for b in m["content"] if isinstance(b, dict)]
    assert {b["type"] for b in blocks} == {"text"}  # the Messages API refuses tool blocks without tools
    assert "alice_rnaseq_nightly" in str(blocks)
