"""The HTTP API with FastAPI's TestClient: auth, errors, limits, the store's filters, config and audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from sentinel import control
from sentinel.api.app import create_app
from sentinel.api.server import check_bind
from sentinel.config import ApiSettings, ConfigError
from sentinel.detect.settings import DetectionSettings
from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, Severity
from sentinel.sinks.store import AnomalyStore

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = 1_767_600_000.0  # 2026-01-05T08:00:00Z


def anomaly(
    t: float,
    service: str = "chat",
    model: str = "gpt-4o",
    typ: AnomalyType = AnomalyType.LATENCY_SPIKE,
    sev: Severity = Severity.HIGH,
) -> AnomalyEvent:
    return AnomalyEvent(
        timestamp=t,
        service=service,
        model=model,
        anomaly_type=typ,
        severity=sev,
        detection_method=DetectionMethod.ZSCORE,
        metric="latency_ms",
        observed=9000.0,
        expected=800.0,
        threshold=4.0,
        score=9.5,
        detected_at=T0 + 10_000,
    )


def make_client(tmp_path: Path, **api: Any) -> TestClient:
    settings = ApiSettings(**{"token": SecretStr(TOKEN), **api})
    return TestClient(create_app(settings, DetectionSettings(), tmp_path / "sentinel.db"))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = AnomalyStore(tmp_path / "sentinel.db")
    store.write_events(
        [
            anomaly(T0),
            anomaly(T0 + 60, typ=AnomalyType.ERROR_RATE_SPIKE, sev=Severity.CRITICAL),
            anomaly(T0 + 120, service="search", model="gpt-4o-mini"),
            anomaly(T0 + 180, service="search", model="gpt-4o-mini", sev=Severity.LOW),
        ]
    )
    store.close()
    with make_client(tmp_path) as c:
        yield c


# ---------------------------------------------------------------- auth


def test_health_needs_no_token(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_needs_no_token_for_probes(client: TestClient) -> None:
    r = client.get("/ready")
    assert r.status_code in (200, 503)
    assert "checks" in r.json()


@pytest.mark.parametrize(
    "path", ["/api/v1/anomalies", "/api/v1/config", "/api/v1/config/audit", "/api/v1/baselines/a/b"]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_everything_else_needs_the_token(client: TestClient, path: str, headers: dict[str, str]) -> None:
    r = client.get(path, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized"
    assert TOKEN not in r.text


def test_post_config_needs_the_token(client: TestClient) -> None:
    r = client.post("/api/v1/config", json={"zscore": {"threshold": 3.0}})
    assert r.status_code == 401
    assert client.get("/api/v1/config", headers=AUTH).json()["version"] == 0


def test_no_token_only_on_loopback() -> None:
    check_bind(ApiSettings(host="127.0.0.1"))
    check_bind(ApiSettings(host="::1"))
    check_bind(ApiSettings(host="localhost"))
    check_bind(ApiSettings(host="0.0.0.0", token=SecretStr("t")))
    with pytest.raises(ConfigError, match=r"api\.token is required"):
        check_bind(ApiSettings(host="0.0.0.0"))
    with pytest.raises(ConfigError, match=r"api\.token is required"):
        check_bind(ApiSettings(host="10.1.2.3", token=SecretStr("")))


def test_without_a_token_loopback_clients_need_none(tmp_path: Path) -> None:
    with TestClient(create_app(ApiSettings(), DetectionSettings(), tmp_path / "s.db")) as c:
        assert c.get("/api/v1/anomalies").status_code == 200


# ---------------------------------------------------------------- anomalies


def ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["anomalies"])
    return [a["timestamp"][11:16] for a in body["anomalies"]]


def test_anomalies_newest_first_with_filters(client: TestClient) -> None:
    get = lambda **q: client.get("/api/v1/anomalies", params=q, headers=AUTH)  # noqa: E731
    assert ids(get()) == ["08:03", "08:02", "08:01", "08:00"]
    assert ids(get(service="search")) == ["08:03", "08:02"]
    assert ids(get(service="search", model="gpt-4o-mini", severity="low")) == ["08:03"]
    assert ids(get(type="error_rate_spike")) == ["08:01"]
    assert ids(get(severity="critical")) == ["08:01"]
    assert ids(get(since="2026-01-05T08:01:00Z", until="2026-01-05T08:03:00Z")) == ["08:02", "08:01"]
    assert ids(get(since=str(T0 + 120))) == ["08:03", "08:02"]
    assert ids(get(limit=1)) == ["08:03"]
    assert ids(get(service="nobody")) == []
    full = get(limit=1).json()["anomalies"][0]
    assert full["detection_method"] == "zscore" and full["id"] and full["window"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "nope"}, "type"),
        ({"severity": "huge"}, "severity"),
        ({"limit": 0}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_query_is_422_naming_the_parameter(client: TestClient, query: dict[str, Any], field: str) -> None:
    r = client.get("/api/v1/anomalies", params=query, headers=AUTH)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert [f["field"] for f in body["fields"]] == [field]


def test_store_is_idempotent_and_bounded(tmp_path: Path) -> None:
    store = AnomalyStore(tmp_path / "s.db", retention_s=3600, max_rows=3)
    evs = [anomaly(T0 + i) for i in range(5)]
    store.write_events(evs)
    store.write_events(evs)  # a replay
    assert store.count() == 5
    assert store.prune(now=T0 + 10_000) == 2  # beyond max_rows: the oldest by event time
    assert store.count() == 3
    assert store.prune(now=T0 + 10_000 + 3601) == 3  # older than the retention (by detection time)
    assert store.count() == 0


# ---------------------------------------------------------------- config + audit


def test_config_change_validated_applied_and_audited(client: TestClient) -> None:
    r = client.get("/api/v1/config", headers=AUTH)
    assert r.status_code == 200
    assert r.json()["version"] == 0
    assert r.json()["settings"]["zscore"]["threshold"] == DetectionSettings().zscore.threshold

    r = client.post("/api/v1/config", json={"zscore": {"threshold": 3.0}, "cooldown_s": 60}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1
    assert body["changes"] == {
        "cooldown_s": {"old": 300.0, "new": 60.0},
        "zscore.threshold": {"old": 4.0, "new": 3.0},
    }
    # cumulative: a second partial update keeps the first
    r = client.post("/api/v1/config", json={"spike": {"k": 5}}, headers=AUTH)
    assert r.json()["version"] == 2
    s = client.get("/api/v1/config", headers=AUTH).json()
    assert s["version"] == 2
    assert s["settings"]["zscore"]["threshold"] == 3.0 and s["settings"]["spike"]["k"] == 5
    # a no-op writes nothing
    r = client.post("/api/v1/config", json={"spike": {"k": 5}}, headers=AUTH)
    assert r.json()["version"] == 2 and r.json()["changes"] == {}

    audit = client.get("/api/v1/config/audit", headers=AUTH).json()["entries"]
    assert [e["version"] for e in audit] == [2, 1]
    assert audit[1]["changes"]["zscore.threshold"] == {"old": 4.0, "new": 3.0}
    assert audit[0]["who"].startswith("bearer#") and audit[0]["who"].endswith("@testclient")
    assert TOKEN not in str(audit)
    assert audit[0]["at"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"zscore": {"threshold": -1}}, "zscore.threshold"),
        ({"zscore": {"threshold": "high"}}, "zscore.threshold"),
        ({"zscorr": {"threshold": 3}}, "zscorr"),
        ({"spike": {"k": 20}}, "spike"),  # k ≤ n, a model-level rule
        ({"hst": {"n_trees": 0}}, "hst.n_trees"),
        ([1, 2], "body"),
    ],
)
def test_bad_config_is_422_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    r = client.post("/api/v1/config", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "validation_error"
    assert field in [f["field"] for f in err["fields"]]
    assert field in err["message"]
    assert client.get("/api/v1/config", headers=AUTH).json()["version"] == 0
    assert client.get("/api/v1/config/audit", headers=AUTH).json()["entries"] == []


def test_invalid_json_is_422(client: TestClient) -> None:
    r = client.post("/api/v1/config", content=b"{nope", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "body"


# ---------------------------------------------------------------- limits, errors


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    with make_client(tmp_path, max_body_bytes=100) as c:
        r = c.post("/api/v1/config", content=b"{" + b" " * 200 + b"}", headers=AUTH)
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"cooldown_s": '
            yield b" " * 200
            yield b"60}"

        r = c.post("/api/v1/config", content=chunks(), headers=AUTH)
        assert r.status_code == 413
        assert c.get("/api/v1/config", headers=AUTH).json()["version"] == 0


def test_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    with make_client(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=3) as c:
        assert [c.get("/api/v1/config", headers=AUTH).status_code for _ in range(3)] == [200] * 3
        r = c.get("/api/v1/config", headers=AUTH)
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 2
        assert c.get("/health").status_code == 200  # liveness is never limited


def test_errors_are_json(client: TestClient) -> None:
    r = client.get("/nope", headers=AUTH)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "not_found"
    r = client.delete("/api/v1/config", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_openapi_spec(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/ready", "/api/v1/anomalies", "/api/v1/config", "/api/v1/config/audit"} <= set(spec["paths"])
    assert any(p.startswith("/api/v1/baselines/") for p in spec["paths"])
    assert "DetectionSettings" in spec["components"]["schemas"]
    post = spec["paths"]["/api/v1/config"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/DetectionSettings")
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# ---------------------------------------------------------------- baselines, readiness


def test_baselines_404_then_200(client: TestClient) -> None:
    control.baselines.clear()
    r = client.get("/api/v1/baselines/chat/gpt-4o", headers=AUTH)
    assert r.status_code == 404
    assert "another process" in r.json()["message"]
    control.baselines.publish("chat", "org/model-v1", {"metrics": {"latency": {"expected": 812.5}}, "x": float("nan")})
    try:
        r = client.get("/api/v1/baselines/chat/org/model-v1", headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["baselines"]["metrics"]["latency"]["expected"] == 812.5
        assert body["baselines"]["x"] is None  # NaN is not JSON
        assert body["model"] == "org/model-v1" and body["age_s"] >= 0
    finally:
        control.baselines.clear()


def test_ready_reflects_the_flow(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control.activity, "started", None)
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["ready"] is False and r.json()["checks"]["flow_running"] is False
    # every process of a cluster runs the flow, but only one owns the store's sink partition:
    # readiness must not depend on holding it
    monkeypatch.setattr(control.activity, "started", 1.0)
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["store_writable"] is True
