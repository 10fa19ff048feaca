"""Logs are structured (one JSON object a line), honour LOG_LEVEL, and never contain tokens, keys or
passwords, whatever happens (sentinel values are planted in every secret)."""
from __future__ import annotations

import asyncio
import json
import logging
import signal

import aiohttp
import pytest

from agent_backend.logs import JsonFormatter
from tests.support.cli import Cli, run_bash
from tests.support.standins.anthropic import Reply


async def exercise(url, sentinels, anthropic, platform):
    async with aiohttp.ClientSession() as http:
        alice = Cli(http, url, sentinels.alice_token)
        sid = await alice.create_session()
        await alice.turn(sid, "please run `echo logs`", tools=run_bash)
        anthropic.script(Reply.overloaded(), Reply.stream_error("half "))
        await alice.turn(sid, "fail please")
        await Cli(http, url, "bad-" + sentinels.bob_token).get("/v1/cli/user-info")
        await alice.request("POST", f"/v1/cli/sessions/{sid}/messages", data="{broken " + sentinels.bob_token)
        platform.go_down("refuse")
        await Cli(http, url, sentinels.bob_token).get("/v1/cli/user-info")
        platform.come_up()
        await alice.post("/v1/cli/telemetry/crash", {"error_message": "boom", "stack": "x"})
        await alice.expire(sid)


async def test_no_secrets_in_logs_at_debug(service_process, sentinels, anthropic_standin, platform_standin):
    proc = service_process({"LOG_LEVEL": "DEBUG"})
    await exercise(proc.url, sentinels, anthropic_standin, platform_standin)
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 60)
    log = proc.log()
    assert log.strip(), "the service logged nothing at DEBUG"
    sentinels.assert_absent(log, "the service log")


async def test_logs_are_json_lines_at_the_configured_level(service_process, sentinels, anthropic_standin,
                                                           platform_standin):
    proc = service_process({"LOG_LEVEL": "WARNING"})
    await exercise(proc.url, sentinels, anthropic_standin, platform_standin)
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 60)
    lines = [line for line in proc.log().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"log line is not JSON: {line!r}") from None
    assert records, "trouble happened (upstream errors, Platform down) but nothing was logged at WARNING"
    for rec in records:
        assert rec.get("level") in ("WARNING", "ERROR", "CRITICAL"), rec
    sentinels.assert_absent(proc.log(), "the service log")


def formatted(msg: str, **fields) -> dict:
    """One record through the service's formatter, parsed back (it must stay valid JSON)."""
    record = logging.makeLogRecord({"msg": msg, "levelname": "WARNING", "name": "third.party"})
    record.fields = fields
    return json.loads(JsonFormatter().format(record))


@pytest.mark.parametrize("msg", [
    'dsn password="hunter2-SENTINEL" rejected',
    "dsn password='hunter2-SENTINEL' rejected",
    'request body {"password": "hunter2-SENTINEL"}',
    "Authorization: Bearer hunter2-SENTINEL",
    "API Key: lsv2_hunter2-SENTINEL",
    "Authorization: Basic aHVudGVyMi1TRU5USU5FTA==",
])
def test_third_party_messages_are_redacted_whatever_the_quoting(msg):
    entry = formatted(msg)
    assert "hunter2" not in json.dumps(entry) and "aHVudGVy" not in json.dumps(entry)
    assert "[redacted]" in entry["msg"]


def test_credential_named_fields_are_redacted_and_the_line_stays_json():
    entry = formatted("connect", db_password="hunter2-SENTINEL", token=None, input_tokens=5, api_key=12345,
                      nested={"api_key": "hunter2-SENTINEL", "note": "password=hunter2-SENTINEL"})
    assert "hunter2" not in json.dumps(entry)
    assert entry["token"] is None and entry["input_tokens"] == 5 and entry["api_key"] == "[redacted]"


def test_mysql_says_whether_a_password_was_sent():
    """'using password: YES/NO' tells a wrong secret from a missing one; it is not a secret."""
    for answer in ("YES", "NO"):
        msg = f"(1045, \"Access denied for user 'u'@'10.0.0.1' (using password: {answer})\")"
        assert f"(using password: {answer})" in formatted(msg)["msg"]
