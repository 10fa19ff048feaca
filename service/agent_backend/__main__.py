"""`python -m agent_backend`: serve on 0.0.0.0:AGENT_BACKEND_PORT until SIGTERM/SIGINT."""
from __future__ import annotations

import gc
import logging
import sys

from aiohttp import web

from .app import create_app
from .config import ConfigError, load_config
from .logs import log, setup_logging


async def _freeze_heap(app) -> None:
    # The SDKs import ~170k long-lived objects; a full GC pass over them stalls the event loop for
    # ~100 ms. Move everything that exists after start-up out of the collector's reach.
    gc.collect()
    gc.freeze()
    # Fewer young-generation passes, so short-lived stream objects rarely reach (and trigger) gen2.
    gc.set_threshold(50_000, 20, 20)


def main() -> int:
    try:
        cfg = load_config()
    except ConfigError as exc:
        setup_logging("INFO")
        log(logging.getLogger("agent_backend"), logging.CRITICAL, f"configuration error: {exc}")
        return 2
    setup_logging(cfg.log_level)
    app = create_app(cfg)
    app.on_startup.append(_freeze_heap)
    # SIGTERM: stop listening, run on_shutdown (runs get `shutdown_grace` = 20 s, then are interrupted
    # within 5 s), give open streams 5 s to write their last part, then close: under Kubernetes'
    # default 30 s termination grace period.
    web.run_app(app, host="0.0.0.0", port=cfg.port, access_log=None, print=None,
                shutdown_timeout=5.0, handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
