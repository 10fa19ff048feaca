"""The stand-ins behave like the real services, as seen by the real client libraries.

If these fail, every other service test is meaningless: they prove the anthropic SDK decodes the
stand-in's stream into the right message, that scripted failures surface as the SDK's real error
types, and that the real langsmith Client's traces are recorded. (The database helper has its own
module, test_mariadb_helper.py.)
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import anthropic
import httpx2
import langsmith
import pytest
from langsmith import Client, traceable

from tests.support import paths, sse
from tests.support.proc import stop_process
from tests.support.standins import free_port
from tests.support.standins.anthropic import DEFAULT_ANSWER, RESULT_PREFIX, AnthropicStandIn, Reply, api_key_of

TOOLS = [{"name": "execute_bash_local", "description": "run", "input_schema": {
    "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]


def client(standin: AnthropicStandIn, key: str = "sk-standin-test") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=standin.url, api_key=key, max_retries=0)


async def stream_all(c: anthropic.AsyncAnthropic, **kw):
    kw.setdefault("model", "claude-test")
    kw.setdefault("max_tokens", 100)
    kw.setdefault("messages", [{"role": "user", "content": "hi"}])
    events, texts = [], []
    async with c.messages.stream(**kw) as s:
        async for ev in s:
            events.append(ev.type)
            if ev.type == "text":
                texts.append(ev.text)
        final = await s.get_final_message()
    return events, texts, final


class TestAnthropicStandIn:
    async def test_default_answer_streams_as_text_deltas_with_usage(self, anthropic_standin):
        events, texts, final = await stream_all(client(anthropic_standin))
        assert "".join(texts) == DEFAULT_ANSWER
        assert len(texts) > 3
        assert final.content[0].text == DEFAULT_ANSWER
        assert final.stop_reason == "end_turn"
        usage = anthropic_standin.message_requests[0].extra["usage"]
        assert final.usage.input_tokens == usage["input_tokens"] > 0
        assert final.usage.output_tokens == usage["output_tokens"] > 0
        assert events[0] == "message_start" and events[-1] == "message_stop"

    async def test_wire_sequence_is_the_documented_one(self, anthropic_standin):
        anthropic_standin.script(Reply.tool_use("execute_bash_local", {"command": "echo hi"}, text="Sure."))
        async with httpx2.AsyncClient() as h:
            resp = await h.post(anthropic_standin.url + "/v1/messages", json={
                "model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "x"}]})
        assert resp.headers["content-type"].startswith("text/event-stream")
        frames = sse.parse(resp.text)
        assert all(f.event and f.data is not None for f in frames), [f.raw for f in frames]
        names = [f.event for f in frames]
        datas = [f.json() for f in frames]
        assert all(d["type"] == n for n, d in zip(names, datas))
        assert names[0] == "message_start" and "ping" in names
        assert names[-2:] == ["message_delta", "message_stop"]
        assert datas[-2]["delta"]["stop_reason"] == "tool_use" and "output_tokens" in datas[-2]["usage"]
        json_deltas = [d["delta"]["partial_json"] for d in datas
                       if d["type"] == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
        assert len(json_deltas) >= 2
        assert json.loads("".join(json_deltas)) == {"command": "echo hi"}
        starts = [d for d in datas if d["type"] == "content_block_start"]
        assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
        assert names.count("content_block_stop") == 2

    async def test_tool_use_input_accumulates_in_sdk(self, anthropic_standin):
        anthropic_standin.script(Reply.tool_use("execute_bash_local", {"command": "ls -la /tmp"}))
        _, _, final = await stream_all(client(anthropic_standin), tools=TOOLS)
        tool = final.content[-1]
        assert (tool.type, tool.name, tool.input) == ("tool_use", "execute_bash_local", {"command": "ls -la /tmp"})
        assert final.stop_reason == "tool_use"

    async def test_records_model_tools_and_api_key(self, anthropic_standin):
        await stream_all(client(anthropic_standin, "sk-secret-123"), model="claude-x", tools=TOOLS)
        rec = anthropic_standin.message_requests[0]
        assert rec.json["model"] == "claude-x"
        assert [t["name"] for t in rec.json["tools"]] == ["execute_bash_local"]
        assert api_key_of(rec) == "sk-secret-123"

    async def test_api_key_is_enforced_when_configured(self):
        with AnthropicStandIn(api_key="right") as s:
            with pytest.raises(anthropic.AuthenticationError):
                await stream_all(client(s, "wrong"))
            _, texts, _ = await stream_all(client(s, "right"))
            assert texts

    @pytest.mark.parametrize("reply, error", [
        (Reply.rate_limited(), anthropic.RateLimitError),
        (Reply.overloaded(), anthropic.OverloadedError),
        (Reply.server_error(), anthropic.InternalServerError),
    ])
    async def test_errors_before_first_byte(self, anthropic_standin, reply, error):
        anthropic_standin.script(reply)
        with pytest.raises(error):
            await stream_all(client(anthropic_standin))

    async def test_sdk_retries_scripted_errors_then_succeeds(self, anthropic_standin):
        anthropic_standin.script(Reply.overloaded(headers={"retry-after-ms": "1"}), Reply.text("after retry"))
        c = anthropic.AsyncAnthropic(base_url=anthropic_standin.url, api_key="k", max_retries=2)
        _, texts, _ = await stream_all(c)
        assert "".join(texts) == "after retry"
        assert len(anthropic_standin.message_requests) == 2

    async def test_error_event_mid_stream(self, anthropic_standin):
        anthropic_standin.script(Reply.stream_error("partial words here"))
        texts = []
        with pytest.raises(anthropic.APIStatusError) as e:
            async with client(anthropic_standin).messages.stream(
                    model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
                async for t in s.text_stream:
                    texts.append(t)
        assert "".join(texts) == "partial words here"
        assert "overloaded_error" in str(e.value)

    async def test_dropped_connection_mid_stream(self, anthropic_standin):
        anthropic_standin.script(Reply.drop("partial words"))
        texts = []
        with pytest.raises(Exception) as e:
            async with client(anthropic_standin).messages.stream(
                    model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
                async for t in s.text_stream:
                    texts.append(t)
        assert "".join(texts) == "partial words"
        assert not isinstance(e.value, AssertionError)
        assert anthropic_standin.message_requests[0].extra["failed"] == "drop"

    async def test_held_stream_waits_for_release_and_notices_a_leaving_client(self, anthropic_standin):
        anthropic_standin.script(Reply.held("one two three"), Reply.held("four five"))
        c = client(anthropic_standin)
        task = asyncio.create_task(stream_all(c))
        assert await asyncio.to_thread(anthropic_standin.wait_held)
        assert not task.done()
        anthropic_standin.release()
        _, texts, _ = await task
        assert "".join(texts) == "one two three"
        # second: the client goes away while held
        task = asyncio.create_task(stream_all(c))
        assert await asyncio.to_thread(anthropic_standin.wait_held)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if anthropic_standin.message_requests[1].extra.get("client_disconnected"):
                break
            await asyncio.sleep(0.02)
        assert anthropic_standin.message_requests[1].extra.get("client_disconnected")

    async def test_smart_default_calls_the_tool_then_quotes_its_result(self, anthropic_standin):
        c = client(anthropic_standin)
        first = await c.messages.create(model="m", max_tokens=100, tools=TOOLS, messages=[
            {"role": "user", "content": "Please run `echo sentinel-42` for me"}])
        tool = first.content[-1]
        assert tool.type == "tool_use" and tool.input == {"command": "echo sentinel-42"}
        second = await c.messages.create(model="m", max_tokens=100, tools=TOOLS, messages=[
            {"role": "user", "content": "Please run `echo sentinel-42` for me"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id,
                                          "content": [{"type": "text", "text": "sentinel-42\n"}]}]},
        ])
        assert second.content[0].text == RESULT_PREFIX + "sentinel-42"

    async def test_smart_default_does_not_call_tools_that_are_not_offered(self, anthropic_standin):
        r = await client(anthropic_standin).messages.create(model="m", max_tokens=10, messages=[
            {"role": "user", "content": "run `ls`"}])
        assert r.content[0].text == DEFAULT_ANSWER

    def test_runs_standalone_from_the_command_line(self):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.standins.anthropic", "--port", str(port)],
                                cwd=paths.ROOT, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            assert f"127.0.0.1:{port}" in line
            c = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0)
            r = c.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
            assert r.content[0].text == DEFAULT_ANSWER
        finally:
            assert stop_process(proc) == 0  # SIGTERM: a clean exit


class TestLangSmithStandIn:
    @pytest.mark.parametrize("compress", [True, False])
    def test_real_client_trace_arrives_with_child_run(self, langsmith_standin, monkeypatch, compress):
        if not compress:
            monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
        c = Client(api_url=langsmith_standin.url, api_key="lsv2-test-key")

        @traceable(name="model-call", run_type="llm", client=c)
        def model(q):
            return "answer"

        @traceable(name="turn", run_type="chain", client=c, metadata={"session_id": "s-1"})
        def turn(q):
            return model(q)

        with langsmith.tracing_context(enabled=True):
            turn("hello")
        c.flush()
        assert langsmith_standin.wait_for_runs(
            lambda runs: len(runs) == 2 and all(r.get("end_time") for r in runs))
        [root] = langsmith_standin.root_runs()
        assert root["name"] == "turn" and root["extra"]["metadata"]["session_id"] == "s-1"
        [child] = langsmith_standin.children(root["id"])
        assert child["name"] == "model-call" and child["outputs"] == {"output": "answer"}
        assert langsmith_standin.requests_to("/runs/multipart")
        assert langsmith_standin.requests_to("/runs/multipart")[0].header("x-api-key") == "lsv2-test-key"
        assert b"hello" in langsmith_standin.all_bytes()

    def test_batch_and_single_run_endpoints(self, langsmith_standin):
        import requests

        requests.post(langsmith_standin.url + "/runs/batch", json={
            "post": [{"id": "a", "name": "x", "inputs": {"q": 1}}], "patch": []}).raise_for_status()
        requests.patch(langsmith_standin.url + "/runs/a", json={"outputs": {"r": 2}}).raise_for_status()
        requests.post(langsmith_standin.url + "/runs", json={"id": "b", "name": "y"}).raise_for_status()
        runs = {r["id"]: r for r in langsmith_standin.all_runs()}
        assert runs["a"]["outputs"] == {"r": 2} and runs["a"]["inputs"] == {"q": 1}
        assert runs["b"]["name"] == "y"


class TestPlatformStandIn:
    def test_user_info_tokens_and_outage(self, platform_standin):
        import requests

        p = platform_standin
        p.add_user("tok-a", "alice", orgs=[{"name": "acme"}])
        h = {"Authorization": "Bearer tok-a"}
        user = requests.get(p.api_url + "/user-info", headers=h).json()["user"]
        assert user["userName"] == "alice" and user["email"] == "alice@example.org" and "id" in user
        assert requests.get(p.api_url + "/user-info", headers={"Authorization": "Bearer x"}).status_code == 401
        assert requests.get(p.api_url + "/user-info").status_code == 401
        assert requests.get(p.api_url + "/orgs", headers=h).json()["organizations"][0]["name"] == "acme"
        assert p.user_info_calls("tok-a") == 1 and p.user_info_calls() == 3
        p.go_down("5xx")
        assert requests.get(p.api_url + "/user-info", headers=h).status_code == 503
        p.go_down("refuse")
        with pytest.raises(requests.ConnectionError):
            requests.get(p.api_url + "/user-info", headers=h, timeout=5)
        p.come_up()
        assert requests.get(p.api_url + "/user-info", headers=h).status_code == 200
