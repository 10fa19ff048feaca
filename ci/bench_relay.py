"""The benchmark's floor: a minimal aiohttp relay of the Anthropic Messages API, a process of its own:
`python ci/bench_relay.py UPSTREAM_URL`.

One route, `POST /v1/messages`: the client's `x-api-key` must be BENCH_RELAY_KEY; the request body goes
upstream unread (`UPSTREAM_URL/v1/messages`, with BENCH_ANTHROPIC_KEY and the client's
`anthropic-version` / `anthropic-beta`), and the upstream response's status, content type and body
come back byte for byte, each chunk written as it arrives (streaming). No database, no parsing, no
logging, one shared upstream connection pool: what relaying costs when a relay does nothing else.
Keys come from the environment, never argv. It prints `READY <url>` once it listens on 127.0.0.1 and
runs until SIGTERM/SIGINT or until its stdin reaches EOF (its parent, ci/bench.py, went away).
"""
from __future__ import annotations

import asyncio
import hmac
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from tests.support.proc import die_with_parent, stop_event  # noqa: E402
from tests.support.standins import free_port  # noqa: E402

PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
UPSTREAM = web.AppKey("upstream", aiohttp.ClientSession)


def make_app(upstream_url: str, client_key: str, upstream_key: str) -> web.Application:
    target = upstream_url.rstrip("/") + "/v1/messages"

    async def messages(request: web.Request) -> web.StreamResponse:
        if not hmac.compare_digest(request.headers.get("x-api-key", ""), client_key):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        headers = {"x-api-key": upstream_key, "content-type": "application/json"}
        headers.update((h, request.headers[h]) for h in PASSED_HEADERS if h in request.headers)
        body = await request.read()
        async with request.app[UPSTREAM].post(target, data=body, headers=headers) as up:
            resp = web.StreamResponse(status=up.status, headers={
                "Content-Type": up.headers.get("Content-Type", "application/octet-stream"),
                "Cache-Control": "no-cache"})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        conn = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        app[UPSTREAM] = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None),
                                              auto_decompress=False)
        yield
        await app[UPSTREAM].close()

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.cleanup_ctx.append(session)
    return app


async def serve(upstream_url: str) -> None:
    app = make_app(upstream_url, os.environ["BENCH_RELAY_KEY"], os.environ["BENCH_ANTHROPIC_KEY"])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop = stop_event()  # SIGINT/SIGTERM or stdin EOF, from another thread
    loop.run_in_executor(None, lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)))
    print(f"READY http://127.0.0.1:{port}", flush=True)
    await done.wait()
    await runner.cleanup()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: bench_relay.py UPSTREAM_URL", file=sys.stderr)
        return 2
    die_with_parent()
    asyncio.run(serve(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
