"""Structured logs: JSON lines, human format, and no PII or secrets in any line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from pydantic import SecretStr

from sentinel.config import LoggingSettings
from sentinel.logs import setup_logging


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    buf = io.StringIO()
    handler = setup_logging(LoggingSettings(level="DEBUG"), stream=buf)
    yield buf, logging.getLogger("sentinel.test")
    logging.getLogger().removeHandler(handler)


def lines(buf: io.StringIO) -> list[dict]:
    return [orjson.loads(x) for x in buf.getvalue().splitlines()]


def test_json_lines_with_extra_fields(capture: tuple[io.StringIO, logging.Logger]) -> None:
    buf, log = capture
    log.info("window closed for %s", "chat", extra={"requests": 42, "key": "chat|gpt-4o"})
    (rec,) = lines(buf)
    assert rec["level"] == "INFO" and rec["logger"] == "sentinel.test"
    assert rec["msg"] == "window closed for chat"
    assert rec["requests"] == 42 and rec["key"] == "chat|gpt-4o"
    assert rec["ts"].endswith("Z") and "T" in rec["ts"]


def test_pii_and_secrets_are_masked_everywhere(capture: tuple[io.StringIO, logging.Logger]) -> None:
    buf, log = capture
    log.warning(
        "user %s sent Authorization: Bearer abcdefghijklmnop with card 4111 1111 1111 1111",
        "bob@example.com",
        extra={
            "token": "tok-123456789",
            "api": SecretStr("hunter2-hunter2"),
            "note": "call (415) 555-2671",
            "nested": {"password": "pw-123456", "ok": "sk-proj-abcdefghijklmnopqrstuv"},
        },
    )
    try:
        raise ValueError("api_key=sk-abcdefghijklmnopqrstuvwx for alice@corp.io")
    except ValueError:
        log.exception("boom")
    text = buf.getvalue()
    for secret in (
        "bob@example.com",
        "abcdefghijklmnop",
        "4111",
        "tok-123456789",
        "hunter2",
        "555-2671",
        "pw-123456",
        "sk-proj-abc",
        "sk-abcdef",
        "alice@corp.io",
    ):
        assert secret not in text, secret
    first, second = lines(buf)
    assert "[EMAIL]" in first["msg"] and "[CARD]" in first["msg"] and "Bearer [SECRET]" in first["msg"]
    assert first["token"] == "[REDACTED]" and first["api"] == "**********"
    assert first["nested"]["password"] == "[REDACTED]" and first["nested"]["ok"] == "[SECRET]"
    assert "ValueError" in second["exc"] and "[EMAIL]" in second["exc"]


def test_third_party_loggers_are_masked_too(capture: tuple[io.StringIO, logging.Logger]) -> None:
    buf, _ = capture
    logging.getLogger("uvicorn.error").error("client carol@example.org failed")
    (rec,) = lines(buf)
    assert rec["logger"] == "uvicorn.error" and rec["msg"] == "client [EMAIL] failed"


def test_human_format_and_level() -> None:
    buf = io.StringIO()
    handler = setup_logging(LoggingSettings(level="warning", format="human"), stream=buf)
    try:
        log = logging.getLogger("sentinel.test")
        log.info("hidden")
        log.warning("shown to dave@example.com", extra={"n": 3})
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = buf.getvalue().splitlines()
    assert " WARNING sentinel.test: shown to [EMAIL]" in line and line.endswith("n=3")


def test_setup_is_idempotent() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    h1 = setup_logging(stream=io.StringIO())
    h2 = setup_logging(stream=io.StringIO())
    try:
        assert h1 not in root.handlers and h2 in root.handlers
        assert len(root.handlers) == before + 1
    finally:
        root.removeHandler(h2)
