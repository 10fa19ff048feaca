"""Structured logging: one JSON object per line on stderr, at LOG_LEVEL.

Callers pass context with `extra={"fields": {...}}`; never tokens, keys or passwords.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Defence in depth against third-party messages that echo credentials (e.g. "API Key: lsv2_***8d").
_SECRETS = re.compile(
    r"(?i)((?:api[ _-]?key|x-api-key|authorization|password|token)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?|bearer\s+)"
    r"[^\s,;\"']+"
    r"|\b(?:sk-ant-|lsv2_|ls__)[A-Za-z0-9_\-\*]+")


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        for key, value in vars(record).items():
            if key not in _RESERVED and key != "fields" and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party clients log request URLs and sometimes headers at DEBUG: keep them at WARNING.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "anthropic", "langsmith", "urllib3",
                  "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def log(logger: logging.Logger, level: int, msg: str, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
