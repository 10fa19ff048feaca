"""`python -m agent_backend`: serve on 0.0.0.0:AGENT_BACKEND_PORT until SIGTERM/SIGINT.

Exit codes: 0 after SIGTERM/SIGINT, 2 when it cannot start (a configuration error, or the port cannot be
listened on: in use, not permitted); either is one CRITICAL log line naming the cause.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys

from aiohttp import web

from .app import create_app, drain_then_stop
from .config import ConfigError, load_config
from .logs import log, setup_logging


async def _freeze_heap(app) -> None:
    # The SDKs import ~170k long-lived objects; a full GC pass over them stalls the event loop for
    # ~100 ms. Move everything that exists after start-up out of the collector's reach.
    gc.collect()
    gc.freeze()
    # Fewer young-generation passes, so short-lived stream objects rarely reach (and trigger) gen2.
    gc.set_threshold(50_000, 20, 20)


async def _handle_signals(app) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain_then_stop, app)


def main() -> int:
    logger = logging.getLogger("agent_backend")
    try:
        cfg = load_config()
    except ConfigError as exc:
        setup_logging("INFO")
        log(logger, logging.CRITICAL, f"configuration error: {exc}")
        return 2
    setup_logging(cfg.log_level)
    # Bound before anything starts, so that "agent-backend started" (logged at the end of start-up) is
    # only ever logged while listening, and a taken port is one clear line instead of a traceback.
    try:
        sock = socket.create_server(("0.0.0.0", cfg.port), backlog=128)
    except OSError as exc:
        reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
        log(logger, logging.CRITICAL, f"cannot listen on port {cfg.port} (AGENT_BACKEND_PORT): {reason}",
            port=cfg.port)
        return 2
    app = create_app(cfg)
    app.on_startup.append(_freeze_heap)
    app.on_startup.append(_handle_signals)
    # SIGTERM/SIGINT (app.drain_then_stop): keep serving while runs drain (new sessions and messages get
    # 503, readiness 503; runs get `shutdown_grace` = 20 s, then are interrupted within 5 s), then stop
    # listening, give open streams 5 s to write their last part, and close: under Kubernetes' default
    # 30 s termination grace period.
    web.run_app(app, sock=sock, access_log=None, print=None, shutdown_timeout=5.0, handle_signals=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
