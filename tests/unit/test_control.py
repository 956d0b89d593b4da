"""The control channel: versioned, validated, audited runtime detection settings picked up by the detect step."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sentinel import control
from sentinel.control import ControlChannel, ControlPoller, deep_merge, diff
from sentinel.detect.settings import DetectionSettings
from sentinel.models import TelemetryEvent
from sentinel.operators import DetectRuntime, KeyChunk, _DetectLogic


def test_deep_merge_and_diff() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}
    assert diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 5, "c": 2}}) == {"a.b": {"old": 1, "new": 5}}


def test_update_is_cumulative_versioned_and_audited(tmp_path: Path) -> None:
    base = DetectionSettings(cooldown_s=120)
    ch = ControlChannel(tmp_path / "c.db")
    assert ch.effective(base) == (0, base)
    v1, s1, changes = ch.update(base, {"zscore": {"threshold": 3.0}}, "alice")
    assert (v1, s1.zscore.threshold, s1.cooldown_s) == (1, 3.0, 120)  # the config file's cooldown stays
    assert changes == {"zscore.threshold": {"old": 4.0, "new": 3.0}}
    v2, s2, _ = ControlChannel(tmp_path / "c.db").update(base, {"mad": {"threshold": 7.0}}, "bob")  # another process
    assert v2 == 2 and s2.zscore.threshold == 3.0 and s2.mad.threshold == 7.0
    assert ch.effective(base)[1] == s2
    # the base (a process's config file) still shows through for untouched keys
    assert ch.effective(DetectionSettings(cooldown_s=30))[1].cooldown_s == 30
    assert [(e.version, e.who) for e in ch.audit()] == [(2, "bob"), (1, "alice")]
    assert ch.audit()[0].changes == {"mad.threshold": {"old": 5.0, "new": 7.0}}


def test_invalid_update_writes_nothing(tmp_path: Path) -> None:
    ch = ControlChannel(tmp_path / "c.db")
    with pytest.raises(ValidationError) as e:
        ch.update(DetectionSettings(), {"zscore": {"threshold": 0}}, "x")
    assert e.value.errors()[0]["loc"] == ("zscore", "threshold")
    assert ch.latest_version() == 0 and ch.audit() == []


def test_settings_the_detectors_cannot_take_are_refused_before_they_are_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ch = ControlChannel(tmp_path / "c.db")
    real = control.DetectorBank

    def picky(settings: DetectionSettings, service: str, model: str) -> object:
        if settings.zscore.threshold > 9:
            raise ValueError("threshold too large for this detector")
        return real(settings, service, model)

    monkeypatch.setattr(control, "DetectorBank", picky)
    assert ch.update(DetectionSettings(), {"zscore": {"threshold": 6.0}}, "x")[0] == 1
    with pytest.raises(ValidationError, match="threshold too large"):
        ch.update(DetectionSettings(), {"zscore": {"threshold": 10.0}}, "x")
    assert ch.latest_version() == 1 and len(ch.audit()) == 1


def test_stale_overrides_fall_back_to_the_config(tmp_path: Path) -> None:
    ch = ControlChannel(tmp_path / "c.db")
    ch._conn.execute("INSERT INTO config_versions (created_at, overrides) VALUES (0, ?)", (b'{"renamed": 1}',))
    base = DetectionSettings()
    assert ch.effective(base) == (1, base)


def test_poller_polls_at_most_every_poll_s(tmp_path: Path) -> None:
    base = DetectionSettings()
    poller = ControlPoller(tmp_path / "c.db", base, poll_s=3600)
    assert poller.current() == (0, base)
    ControlChannel(tmp_path / "c.db").update(base, {"cooldown_s": 1.0}, "x")
    assert poller.current()[0] == 0  # not yet: polled less than poll_s ago
    poller._next_poll = 0.0
    version, s = poller.current()
    assert version == 1 and s.cooldown_s == 1.0


def ev(i: int) -> TelemetryEvent:
    return TelemetryEvent(
        timestamp=1_767_600_000.0 + i,
        service="svc",
        model="m",
        latency_ms=800.0 + (i % 7) * 10,
        input_tokens=500,
        output_tokens=200,
    )


def test_detect_logic_applies_new_versions_and_publishes_baselines(tmp_path: Path) -> None:
    control.baselines.clear()
    base = DetectionSettings()
    poller = ControlPoller(tmp_path / "c.db", base, poll_s=0.0)
    logic = _DetectLogic(base, None, 3600.0, DetectRuntime(poller, baselines_interval_s=0.0), 0)
    logic.on_batch([KeyChunk("svc|m", [ev(i) for i in range(50)])])
    assert logic.bank is not None and logic.bank.settings.zscore.threshold == 4.0
    assert control.baselines.get("svc", "m") is not None
    assert control.baselines.get("svc", "m")[1]["metrics"]["latency"]["n"] == 50  # type: ignore[index]
    n_before = logic.bank.tracks["latency"].z.n
    ControlChannel(tmp_path / "c.db").update(base, {"zscore": {"threshold": 2.5}}, "x")
    logic.on_batch([KeyChunk("svc|m", [ev(50)])])
    assert logic.version == 1
    assert logic.bank.settings.zscore.threshold == 2.5
    assert logic.bank.tracks["latency"].z.n == n_before + 1  # learned state kept
    logic.idle_s = 0.0
    logic.on_notify()
    assert control.baselines.get("svc", "m") is None  # an expired key is gone from the API too
