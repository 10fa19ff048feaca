"""Structured logging: one JSON object per line on stderr, at LOG_LEVEL.

Callers pass context with `extra={"fields": {...}}`; never tokens, keys or passwords.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Defence in depth against third-party messages that echo credentials (e.g. "API Key: lsv2_***8d",
# 'password="..."'). MySQL's "(using password: YES)" / "NO" stays: it tells a wrong secret from a missing one.
_SECRETS = re.compile(
    r"(?i)((?:api[ _-]?key|x-api-key|authorization|password|token)[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?|bearer\s+)"
    r"(?!(?:YES|NO)\))[^\s,;\"']+"
    r"|\b(?:sk-ant-|lsv2_|ls__)[A-Za-z0-9_\-\*]+")
# Field names whose values are credentials, whatever they look like.
_SECRET_FIELD = re.compile(r"(?i)^(?:.*[_-])?(?:api[_-]?key|authorization|password|passwd|secret|token)$")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or "") + REDACTED, text)


def strip_userinfo(text: str) -> str:
    """`text` with any URL userinfo (`user:password@`) hidden, also in malformed URLs such as
    `https//user:pw@host` or a bare `user:pw@host`: everything from the first `//` before the last `@`
    (or from the start, without one) up to that `@` becomes `[redacted]@`. Errs on hiding too much."""
    at = text.rfind("@")
    if at < 0:
        return text
    slashes = text.find("//", 0, at)
    start = slashes + 2 if slashes >= 0 else 0
    return f"{text[:start]}{REDACTED}@{text[at + 1:]}"


def _scrub(value: Any) -> Any:
    """A log value made safe to encode: strings redacted (before JSON escaping, so quoting cannot hide a
    secret from the patterns), string values of credential-named keys replaced, anything else by its str()."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): REDACTED if v is not None and not isinstance(v, bool) and _SECRET_FIELD.match(str(k))
                else _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return redact(str(value))


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
        return json.dumps(_scrub(entry))


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
    # The mcp SDK warns per request about sessions a restarted server lost; seqera_mcp logs the outage once.
    logging.getLogger("mcp").setLevel(max(logging.ERROR, logging.getLevelName(level)))


def log(logger: logging.Logger, level: int, msg: str, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
