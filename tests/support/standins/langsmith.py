"""A local stand-in of the LangSmith ingest API that records every run the `langsmith` SDK sends.

    ls = LangSmithStandIn().start()
    service env: LANGSMITH_ENDPOINT=ls.url, LANGCHAIN_API_KEY=<any>
    ...
    ls.wait_for_runs(lambda runs: any(r.get("end_time") for r in runs))   # the SDK sends in background
    turn = ls.root_runs()[0]; ls.children(turn["id"])    # merged run dicts (post + patches)
    ls.go_down("5xx") / ls.go_down("refuse") / ls.come_up()

It accepts what langsmith 0.15.x sends: `GET /info`; `POST /runs/multipart` (multipart/form-data with
parts `post.<id>`, `patch.<id>`, `post.<id>.inputs|outputs|extra|events|error|serialized`,
`attachment.<id>.<name>`, optionally `Content-Encoding: zstd`); `POST /runs/batch` (`{post, patch}`);
`POST /runs` and `PATCH /runs/<id>`. Every run operation is kept in `.ops` as (op, run dict) and
merged per run id into `.runs`; the raw bodies stay in `.requests` (for "no secret in a trace" checks
use `ls.all_bytes()`).

Run standalone: `python -m tests.support.standins.langsmith --port 8902`.
"""
from __future__ import annotations

import json
import re
import threading
import time
from typing import Any, Callable

from aiohttp import web

from ._server import RECORDED, StandIn, serve_forever

_DISPOSITION_NAME = re.compile(r'name="([^"]*)"')


def _decompress(body: bytes, encoding: str) -> bytes:
    enc = (encoding or "").lower()
    if enc == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(body).read()
    if enc == "gzip":
        import gzip

        return gzip.decompress(body)
    return body


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """(name, payload) for every part of a multipart/form-data body."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart body without boundary")
    delim = b"--" + m.group(1).encode()
    parts: list[tuple[str, bytes]] = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, payload = chunk.partition(b"\r\n\r\n")
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        name = ""
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-disposition"):
                nm = _DISPOSITION_NAME.search(line)
                if nm:
                    name = nm.group(1)
        parts.append((name, payload))
    return parts


class LangSmithStandIn(StandIn):
    name = "langsmith"
    # Keep request bodies as sent (zstd included); the handlers decompress them themselves.
    runner_kwargs = {"auto_decompress": False}

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.runs: dict[str, dict[str, Any]] = {}
        self.ops: list[tuple[str, dict[str, Any]]] = []
        self.feedback: list[dict[str, Any]] = []
        self._changed = threading.Condition(self._lock)

    # ---- reading what arrived ---------------------------------------------------------------------
    def all_runs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.runs.values()]

    def root_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.all_runs() if not r.get("parent_run_id")]

    def children(self, run_id: str) -> list[dict[str, Any]]:
        return [r for r in self.all_runs() if str(r.get("parent_run_id")) == str(run_id)]

    def all_bytes(self) -> bytes:
        """Every request body as received, decompressed (to search for leaked secrets)."""
        with self._lock:
            return b"\n".join(
                _decompress(r.body, r.header("content-encoding", "") or "") for r in self.requests
            )

    def wait_for_runs(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0) -> bool:
        """Block until predicate(all merged runs) is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if predicate([dict(r) for r in self.runs.values()]):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)

    # ---- HTTP -------------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/info", self._info)
        app.router.add_get("/api/v1/info", self._info)
        app.router.add_post("/runs/multipart", self._multipart)
        app.router.add_post("/runs/batch", self._batch)
        app.router.add_post("/runs", self._post_run)
        app.router.add_patch("/runs/{run_id}", self._patch_run)
        app.router.add_route("*", "/{tail:.*}", self._other)

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({
            "version": "0.12.0",
            "license_expiration_time": None,
            "batch_ingest_config": {
                "use_multipart_endpoint": True,
                "scale_up_qsize_trigger": 1000,
                "scale_up_nthreads_limit": 16,
                "scale_down_nempty_trigger": 4,
                "size_limit": 100,
                "size_limit_bytes": 20971520,
            },
            "instance_flags": {"zstd_compression_enabled": True},
        })

    def _apply(self, op: str, run: dict[str, Any]) -> None:
        rid = str(run.get("id"))
        with self._changed:
            self.ops.append((op, run))
            merged = self.runs.setdefault(rid, {})
            for k, v in run.items():
                if op == "post" or v is not None:
                    merged[k] = v
            self._changed.notify_all()

    async def _multipart(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        body = _decompress(rec.body, request.headers.get("Content-Encoding", ""))
        parts = parse_multipart(body, request.headers.get("Content-Type", ""))
        # Group `post.<id>` with its `post.<id>.<field>` parts, keeping arrival order of the main parts.
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        order: list[tuple[str, str]] = []
        for name, payload in parts:
            pieces = name.split(".")
            if len(pieces) < 2:
                continue
            op, rid = pieces[0], pieces[1]
            if op == "feedback":
                with self._lock:
                    self.feedback.append(json.loads(payload))
                continue
            if op not in ("post", "patch"):
                continue  # attachments are counted in .requests only
            key = (op, rid)
            if key not in pending:
                pending[key] = {"id": rid}
                order.append(key)
            if len(pieces) == 2:
                pending[key].update(json.loads(payload))
            else:
                pending[key][pieces[2]] = json.loads(payload)
        for key in order:
            self._apply(key[0], pending[key])
        return web.json_response({}, status=202)

    async def _batch(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        data = json.loads(_decompress(rec.body, request.headers.get("Content-Encoding", "")))
        for run in data.get("post") or []:
            self._apply("post", run)
        for run in data.get("patch") or []:
            self._apply("patch", run)
        return web.json_response({}, status=202)

    async def _post_run(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        self._apply("post", json.loads(_decompress(rec.body, request.headers.get("Content-Encoding", ""))))
        return web.json_response({}, status=202)

    async def _patch_run(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        run = json.loads(_decompress(rec.body, request.headers.get("Content-Encoding", "")))
        run["id"] = request.match_info["run_id"]
        self._apply("patch", run)
        return web.json_response({}, status=202)

    async def _other(self, request: web.Request) -> web.Response:
        return web.json_response({})


if __name__ == "__main__":
    serve_forever(LangSmithStandIn())
