"""Masker: positives and near-miss negatives for every pattern, key redaction, recursion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.config import PrivacySettings
from sentinel.privacy import Masker, luhn_ok

M = Masker(PrivacySettings())


def luhn_complete(prefix: str) -> str:
    """``prefix`` plus the check digit that makes it Luhn-valid."""
    return next(prefix + str(d) for d in range(10) if luhn_ok(prefix + str(d)))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # e-mail
        ("write to bob.smith+tag@example.co.uk today", "write to [EMAIL] today"),
        ("Ana_O'Neil@mail.example.org", "Ana_O'[EMAIL]"),
        # cards (Luhn-valid), with spaces, dashes or none
        ("card 4111 1111 1111 1111 exp", "card [CARD] exp"),
        ("5500-0000-0000-0004", "[CARD]"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("6011111111111117", "[CARD]"),
        # SSN
        ("ssn 123-45-6789", "ssn [SSN]"),
        ("ids: 078-05-1120;", "ids: [SSN];"),
        # phones
        ("call (415) 555-2671", "call [PHONE]"),
        ("call 415-555-2671 now", "call [PHONE] now"),
        ("415.555.2671", "[PHONE]"),
        ("+1 415 555 2671", "[PHONE]"),
        ("1-800-555-0199", "[PHONE]"),
        ("uk +44 20 7946 0958", "uk [PHONE]"),
        ("de +4915123456789", "de [PHONE]"),
        ("fr +33 1 23 45 67 89", "fr [PHONE]"),
        # secrets
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: Bearer [SECRET]"),
        ("key sk-abcdefghijklmnopqrstuvwxyz012345", "key [SECRET]"),
        ("sk-proj-AbCdEf0123456789_-XyZaBcDeF", "[SECRET]"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz-012345", "[SECRET]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
        ("xoxb-123456789012-abcdefABCDEF", "[SECRET]"),
        ("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "[SECRET]"),
        ("url?api_key=abcd1234efgh&x=1", "url?api_key=[SECRET]&x=1"),
        ('{"password": "hunter2!!"}', '{"password": "[SECRET]"}'),
        ("client_secret: s3cr3tvalue", "client_secret: [SECRET]"),
    ],
)
def test_positives(text: str, masked: str) -> None:
    assert M.mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "no pii here at all",
        "user at example dot com",
        "a@b",
        "@handle and @@",
        # card near-misses: Luhn fails, too short, too long
        "4111 1111 1111 1112",
        "4111111111111112",
        "order 123456789012",
        "id 41111111111111111111",
        # SSN near-misses: invalid area or groups, wrong shape
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
        "123-456-789",
        "1234-56-7890",
        # phone near-misses: plain integers, dates, times, versions, IPs, short numbers
        "order 4155552671",
        "order id 1234567890123",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00Z",
        "12/31/2024",
        "version 1.2.3.4",
        "v10.123.456.7890",
        "ip 192.168.100.200",
        "call 555-2671",
        "area 123-555-2671",
        "price +20 %",
        "+7",
        # secret near-misses
        "sk-learn is a library",
        "task-abcdefghijklmnopqrstuvwxyz",
        "AKIA too short AKIA1234",
        "ghp_short",
        "the bearer of bad news",
        "tokens=1234",
        "max_tokens: 512",
        "AIzaShort",
    ],
)
def test_negatives(text: str) -> None:
    assert M.mask_text(text) == text


def test_generated_cards() -> None:
    for prefix in ("411111111111111", "55000000000000", "3782822463100", "601100099990001"):
        card = luhn_complete(prefix)
        assert M.mask_text(f"pay {card}") == "pay [CARD]"
        wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
        assert M.mask_text(f"pay {wrong}") == f"pay {wrong}"


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="@+"), max_size=80))
def test_text_without_digits_or_at_mostly_passes(text: str) -> None:
    if any(
        w in text.lower() for w in ("sk-", "akia", "gh", "xox", "aiza", "bearer", "key", "token", "secret", "passw")
    ):
        return
    assert M.mask_text(text) == text


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10**12))
def test_plain_integers_are_not_phones(n: int) -> None:
    assert "[PHONE]" not in M.mask_text(f"order {n} shipped")


@settings(max_examples=200)
@given(st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,8})?@[a-z0-9]{1,10}\.(com|org|io|de)", fullmatch=True))
def test_emails_always_masked(email: str) -> None:
    assert M.mask_text(f"to {email}, thanks") == "to [EMAIL], thanks"


def test_mask_attributes_redacts_and_recurses() -> None:
    d = {
        "user.Api_Key": "abc",
        "http.request.header.authorization": ["Bearer xyz"],
        "session_token": "t",
        "gen_ai.usage.input_tokens": 12,  # a token *count* is not a secret
        "llm.token_count.prompt": 7,
        "note": "email a@example.com",
        "nested": {"cookie": "c=1", "list": ["ssn 123-45-6789", 5, None]},
        "n": 3.5,
    }
    assert M.mask_attributes(d) == {
        "user.Api_Key": "[REDACTED]",
        "http.request.header.authorization": "[REDACTED]",
        "session_token": "[REDACTED]",
        "gen_ai.usage.input_tokens": 12,
        "llm.token_count.prompt": 7,
        "note": "email [EMAIL]",
        "nested": {"cookie": "[REDACTED]", "list": ["ssn [SSN]", 5, None]},
        "n": 3.5,
    }
    assert d["note"] == "email a@example.com"  # input untouched


def test_custom_redact_keys_and_disabled() -> None:
    m = Masker(PrivacySettings(redact_keys=["internal"]))
    assert m.mask_attributes({"x.INTERNAL.id": "1", "password": "p"}) == {
        "x.INTERNAL.id": "[REDACTED]",
        "password": "p",
    }
    off = Masker(PrivacySettings(enabled=False))
    assert off.mask_text("bob@example.com") == "bob@example.com"
    assert off.mask_attributes({"password": "p"}) == {"password": "p"}


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")
    assert not luhn_ok("79927398710")
