"""Structured logging: JSON lines by default, a human format on request, PII and secrets masked.

:func:`setup_logging` configures the standard library's root logger once per
process (``build_flow`` and the CLI call it)::

    {"ts": "2026-01-05T08:00:00.123Z", "level": "INFO", "logger": "sentinel.api",
     "msg": "api: serving http://127.0.0.1:8080", "thread": "sentinel-api", "port": 8080}

Every record that reaches our handler first passes :class:`MaskingFilter`: the
rendered message, every ``extra`` field and the traceback text are run through
:class:`sentinel.privacy.Masker` (e-mails, cards, phone numbers, bearer tokens,
API keys…), values of ``extra`` keys that look secret (``token``, ``password``…)
become ``[REDACTED]``, and a :class:`~pydantic.SecretStr` never shows its value.
The filter sits on the handler, so it applies to third-party loggers too
(uvicorn, pika, bytewax). Masking in logs is on even when ``privacy.enabled`` is
false for events.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson
from pydantic import SecretBytes, SecretStr

from sentinel.config import LoggingSettings, PrivacySettings
from sentinel.privacy import REDACTED, Masker

__all__ = ["HumanFormatter", "JsonFormatter", "MaskingFilter", "setup_logging"]

# attributes every LogRecord has; anything else came from ``extra=``
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName", "color_message"}
)
_SECRET_SHOWN = "**********"
_MARK = "_sentinel_handler"


def _rfc3339(t: float) -> str:
    ms = int((t - int(t)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


class MaskingFilter(logging.Filter):
    """Masks the message, ``extra`` fields and exception text of every record in place."""

    def __init__(self, privacy: PrivacySettings | None = None) -> None:
        super().__init__()
        p = privacy or PrivacySettings()
        self.masker = Masker(PrivacySettings(enabled=True, redact_keys=p.redact_keys))

    def _value(self, v: Any) -> Any:
        if isinstance(v, SecretStr | SecretBytes):
            return _SECRET_SHOWN
        if isinstance(v, str):
            return self.masker.mask_text(v)
        if isinstance(v, dict):
            return {k: REDACTED if self.masker.should_redact(str(k)) else self._value(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [self._value(x) for x in v]
        if isinstance(v, int | float | bool) or v is None:
            return v
        return self.masker.mask_text(str(v))

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_sentinel_masked", False):
            return True
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            msg = f"{record.msg!r} % {record.args!r}"
        record.msg = self.masker.mask_text(msg)
        record.args = None
        for k, v in list(vars(record).items()):
            if k in _STANDARD or k.startswith("_"):
                continue
            setattr(record, k, REDACTED if self.masker.should_redact(k) else self._value(v))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker.mask_text(record.exc_text)
            record.exc_info = None  # the text is what gets printed; keep the raw frames out
        if record.stack_info:
            record.stack_info = self.masker.mask_text(record.stack_info)
        record._sentinel_masked = True
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then ``extra`` fields and ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.threadName and record.threadName != "MainThread":
            out["thread"] = record.threadName
        for k, v in _extras(record).items():
            out.setdefault(k, v)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


class HumanFormatter(logging.Formatter):
    """``2026-01-05T08:00:00.123Z INFO  sentinel.api: message key=value …``."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{_rfc3339(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += "  " + extras
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup_logging(
    settings: LoggingSettings | None = None,
    privacy: PrivacySettings | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install (or replace) our handler on the root logger; returns it. Idempotent."""
    s = settings or LoggingSettings()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _MARK, True)
    handler.addFilter(MaskingFilter(privacy))
    handler.setFormatter(JsonFormatter() if s.format == "json" else HumanFormatter())
    root.addHandler(handler)
    root.setLevel(s.level)
    # uvicorn installs its own handlers when it configures logging; we pass log_config=None
    # and let its loggers propagate to ours so they are masked and formatted the same way
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    return handler
