"""PII and secret masking for the few span attributes we keep on events.

Replacements: e-mail addresses → ``[EMAIL]``, Luhn-valid card numbers → ``[CARD]``,
US social security numbers → ``[SSN]``, phone numbers → ``[PHONE]``, bearer tokens
and API keys → ``[SECRET]``. Values of attributes whose *key* contains one of
``PrivacySettings.redact_keys`` become ``[REDACTED]``.

All patterns are compiled once. A single cheap pre-scan (no ``@``, no digit, no key
marker) lets most strings through without running any of them.

>>> from sentinel.config import PrivacySettings
>>> m = Masker(PrivacySettings())
>>> m.mask_text("mail bob@example.com or call (415) 555-2671")
'mail [EMAIL] or call [PHONE]'
>>> m.mask_attributes({"user.api_key": "abc", "note": "card 4111 1111 1111 1111"})
{'user.api_key': '[REDACTED]', 'note': 'card [CARD]'}
"""

from __future__ import annotations

import re
from typing import Any, Protocol

__all__ = ["CARD", "EMAIL", "PHONE", "REDACTED", "SECRET", "SSN", "Masker", "luhn_ok"]

EMAIL = "[EMAIL]"
CARD = "[CARD]"
SSN = "[SSN]"
PHONE = "[PHONE]"
SECRET = "[SECRET]"
REDACTED = "[REDACTED]"

# Anything that could start a match. If this finds nothing the string is returned as is.
_QUICK = re.compile(r"[@\d]|sk-|AKIA|gh[pousr]_|xox|AIza|(?i:bearer|key|token|secret|passw)")

_SECRET_TOKENS = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:proj-|ant-(?:[a-z]+\d*-)?|svcacct-|admin-)?[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r")(?![A-Za-z0-9_-])"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEY_VALUE = re.compile(
    r"(?i)\b((?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|secret|password|passwd|token)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;]{6,})"
)
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+.-])(?:"
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, +1 415 555 2671, 1-415-555-2671
    r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
    # International E.164 with a leading '+': +44 20 7946 0958, +4915123456789
    r"|\+[2-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}"
    r")(?![\w.-])"
)
_INTL_DIGITS = (8, 15)
# Token *counts* are everywhere in GenAI attributes (gen_ai.usage.input_tokens,
# llm.token_count.prompt, max_tokens); they must not trip the "token" redact key.
_TOKEN_COUNT_WORDS = re.compile(r"tokens|token[._]count")


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_sub(m: re.Match[str]) -> str:
    s = m.group(0)
    digits = s.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return CARD
    return s


def _phone_sub(m: re.Match[str]) -> str:
    s = m.group(0)
    if s.startswith("+") and not s.startswith("+1"):
        n = sum(c.isdigit() for c in s)
        if not _INTL_DIGITS[0] <= n <= _INTL_DIGITS[1]:
            return s
    return PHONE


_CACHE_MAX_LEN = 96
_CACHE_SIZE = 8192


def _mask(s: str) -> str:
    s = _SECRET_TOKENS.sub(SECRET, s)
    s = _BEARER.sub(r"\1 " + SECRET, s)
    s = _KEY_VALUE.sub(r"\1" + SECRET, s)
    if "@" in s:
        s = _EMAIL.sub(EMAIL, s)
    s = _CARD.sub(_card_sub, s)
    s = _SSN.sub(SSN, s)
    return _PHONE.sub(_phone_sub, s)


class _PrivacyLike(Protocol):
    @property
    def enabled(self) -> bool: ...

    @property
    def keep_attributes(self) -> list[str]: ...

    @property
    def redact_keys(self) -> list[str]: ...


class Masker:
    """Masks PII and secrets in text and attribute dicts (``PrivacySettings``).

    With ``enabled: false`` both methods return their input unchanged.
    """

    __slots__ = ("_key_cache", "_redact", "_text_cache", "enabled", "keep_attributes")

    def __init__(self, settings: _PrivacyLike) -> None:
        self.enabled = bool(settings.enabled)
        self.keep_attributes: tuple[str, ...] = tuple(settings.keep_attributes)
        self._redact: tuple[str, ...] = tuple(k.lower() for k in settings.redact_keys if k)
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}  # short repeated values (model names, hosts)

    def should_redact(self, key: str) -> bool:
        """True when ``key`` contains one of the configured ``redact_keys`` (case-insensitive).

        Token-count keys (``…_tokens``, ``token_count``) are not secrets and do not match.
        """
        hit = self._key_cache.get(key)
        if hit is None:
            low = _TOKEN_COUNT_WORDS.sub(" ", key.lower())
            hit = any(r in low for r in self._redact)
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = hit
        return hit

    def mask_text(self, s: str) -> str:
        """``s`` with e-mails, cards, SSNs, phone numbers and secrets replaced."""
        if not self.enabled:
            return s
        if len(s) > _CACHE_MAX_LEN:
            return _mask(s) if _QUICK.search(s) else s
        out = self._text_cache.get(s)  # clean strings are cached too: no regex for a repeat
        if out is None:
            if len(self._text_cache) >= _CACHE_SIZE:
                self._text_cache.clear()
            out = self._text_cache[s] = _mask(s) if _QUICK.search(s) else s
        return out

    def mask_value(self, v: Any) -> Any:
        """Masks strings, recursing into lists, tuples and dicts; other values are returned as is."""
        if isinstance(v, str):
            return self.mask_text(v)
        if isinstance(v, dict):
            return self.mask_attributes(v)
        if isinstance(v, list | tuple):
            return [self.mask_value(x) for x in v]
        return v

    def mask_item(self, key: str, value: Any) -> Any:
        """One attribute's value: redacted under a secret-looking key, else its text masked."""
        if not self.enabled:
            return value
        return REDACTED if self.should_redact(str(key)) else self.mask_value(value)

    def mask_attributes(self, d: dict[str, Any]) -> dict[str, Any]:
        """A new dict: values under secret-looking keys redacted, all text masked."""
        if not self.enabled:
            return d
        return {k: self.mask_item(k, v) for k, v in d.items()}
