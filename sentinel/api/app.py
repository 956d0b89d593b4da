"""The HTTP API (FastAPI): health, readiness, anomalies, baselines, runtime detection settings.

Every route but ``/health`` and ``/ready`` (probes) needs ``Authorization: Bearer <api.token>`` (compared
in constant time) when a token is configured; without one the server only binds
to loopback (:func:`sentinel.api.server.check_bind`). Every error, including 404,
405, 413 and 429, is JSON: ``{"error": "<code>", "message": "...", "status": N}``
(validation errors add ``fields``). The OpenAPI spec is at ``/openapi.json``.
"""

# no `from __future__ import annotations`: FastAPI must see the local `Who` alias itself
import hashlib
import hmac
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinel import control
from sentinel.api.guard import Guard
from sentinel.config import ApiSettings
from sentinel.control import ControlChannel
from sentinel.detect.settings import DetectionSettings
from sentinel.models import AnomalyType, Severity, format_ts
from sentinel.sinks.store import AnomalyQuery, AnomalyStore, store_health

__all__ = ["ApiError", "create_app"]

log = logging.getLogger(__name__)

API_VERSION = "1"

_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "not_ready",
}


# ------------------------------------------------------------------ response models (the OpenAPI spec)


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. zscore.threshold")
    loc: list[str | int]
    msg: str
    type: str


class ApiError(BaseModel):
    error: str
    message: str
    status: int
    fields: list[FieldError] | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    checks: dict[str, Any]


class AnomalyList(BaseModel):
    count: int
    anomalies: list[dict[str, Any]]


class Baselines(BaseModel):
    service: str
    model: str
    updated_at: str
    age_s: float
    pid: int
    baselines: dict[str, Any]


class ConfigOut(BaseModel):
    version: int = Field(description="0: the config file's settings; N: runtime version N")
    settings: DetectionSettings


class ConfigUpdateOut(ConfigOut):
    changes: dict[str, dict[str, Any]] = Field(description='{"zscore.threshold": {"old": 4.0, "new": 3.0}}')


class AuditEntryOut(BaseModel):
    version: int
    at: str
    who: str
    changes: dict[str, dict[str, Any]]


class AuditLog(BaseModel):
    entries: list[AuditEntryOut]


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ApiError, "description": "Missing or wrong bearer token"},
    413: {"model": ApiError, "description": "Request body too large"},
    422: {"model": ApiError, "description": "Invalid parameters or body; `fields` names each offending field"},
    429: {"model": ApiError, "description": "Rate limited; see Retry-After"},
}


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": _ERROR_CODES.get(status, "error"), "message": message, "status": status}
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _field_errors(errors: list[Any], drop_prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = [p if isinstance(p, int) else str(p) for p in e.get("loc", ())]
        path = loc[1:] if loc and loc[0] in drop_prefix else loc
        out.append(
            {
                "field": ".".join(str(p) for p in path) or "body",
                "loc": loc,
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
        )
    return out


def _epoch(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


# ------------------------------------------------------------------ the app


def create_app(api: ApiSettings, detection: DetectionSettings, store_path: Path) -> FastAPI:
    """The FastAPI application over the store at ``store_path`` and the process's baselines registry.

    ``detection`` is this process's config-file detection section, the base the
    runtime overrides apply to.
    """
    store = AnomalyStore(store_path, api.store_retention_s, api.store_max_rows)
    channel = ControlChannel(store_path)
    token = api.token.get_secret_value().encode() if api.token is not None else b""
    fingerprint = hashlib.sha256(token).hexdigest()[:8] if token else ""

    app = FastAPI(
        title="LLM-Sentinel API",
        version=API_VERSION,
        description=__doc__,
        separate_input_output_schemas=False,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        Guard, max_body_bytes=api.max_body_bytes, rate_per_s=api.rate_limit_per_s, burst=api.rate_limit_burst
    )
    bearer = HTTPBearer(auto_error=False, description="api.token")

    def identity(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:  # noqa: B008
        client = request.client.host if request.client else "unknown"
        if not token:
            return f"anonymous@{client}"
        given = creds.credentials.encode() if creds is not None else b""
        if creds is None or not hmac.compare_digest(given, token):
            raise StarletteHTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        return f"bearer#{fingerprint}@{client}"

    Who = Annotated[str, Depends(identity)]  # noqa: N806 - a type alias

    # -------------------------------------------------------------- errors: JSON everywhere

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _field_errors(list(exc.errors()), drop_prefix=("body", "query", "path"))
        names = ", ".join(f["field"] for f in fields)
        return _error(422, f"invalid request: {names}", fields=fields)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api: unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error (logged)")

    # -------------------------------------------------------------- routes

    @app.get("/health", response_model=Health, tags=["ops"], summary="Liveness (no auth)")
    def health() -> Health:
        return Health()

    @app.get(
        "/ready",
        response_model=Ready,
        tags=["ops"],
        summary="Readiness (no auth, for probes): the flow runs here and the anomaly store works",
        responses={503: {"model": Ready, "description": "Not ready"}, **_ERRORS},
    )
    def ready() -> JSONResponse:
        h = store_health()
        try:
            store.ping()
            readable: bool | str = True
        except Exception as e:
            readable = f"{type(e).__name__}: {e}"
        last = control.activity.last_batch
        checks: dict[str, Any] = {
            # every process runs the flow; only one of them owns the store's sink partition
            "flow_running": control.activity.started is not None,
            "store_writable": not h.failing,
            "store_readable": readable is True,
            "store_error": h.last_error if h.failing else (readable if readable is not True else None),
            "last_batch_age_s": round(time.time() - last, 3) if last is not None else None,
            "config_version": channel.latest_version(),
            "pid": os.getpid(),
        }
        ok = bool(checks["flow_running"] and checks["store_writable"] and checks["store_readable"])
        return JSONResponse(Ready(ready=ok, checks=checks).model_dump(mode="json"), status_code=200 if ok else 503)

    @app.get(
        "/api/v1/anomalies",
        response_model=AnomalyList,
        tags=["anomalies"],
        summary="Stored anomalies, newest event time first",
        responses=_ERRORS,
    )
    def anomalies(
        who: Who,
        service: str | None = None,
        model: str | None = None,
        anomaly_type: Annotated[AnomalyType | None, Query(alias="type")] = None,
        severity: Severity | None = None,
        since: Annotated[datetime | None, Query(description="Event time ≥ (RFC 3339 or epoch s)")] = None,
        until: Annotated[datetime | None, Query(description="Event time < (RFC 3339 or epoch s)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AnomalyList:
        q = AnomalyQuery(
            service=service,
            model=model,
            anomaly_type=anomaly_type.value if anomaly_type is not None else None,
            severity=severity.value if severity is not None else None,
            since=_epoch(since),
            until=_epoch(until),
            limit=limit,
        )
        rows = store.query(q)
        return AnomalyList(count=len(rows), anomalies=rows)

    @app.get(
        "/api/v1/baselines/{service}/{model:path}",
        response_model=Baselines,
        tags=["detection"],
        summary="Learned baselines of one service/model key held by this process",
        responses={404: {"model": ApiError, "description": "Key not held by this process"}, **_ERRORS},
    )
    def get_baselines(service: str, model: str, who: Who) -> Baselines:
        got = control.baselines.get(service, model)
        if got is None:
            raise StarletteHTTPException(
                404,
                f"no learned baselines for {service}/{model} in this process (pid {os.getpid()}): the key has not "
                "been seen here yet, or another process of the cluster owns it (keys are partitioned by "
                "service|model) — ask that process's API",
            )
        at, data = got
        return Baselines(
            service=service,
            model=model,
            updated_at=format_ts(at),
            age_s=round(time.time() - at, 3),
            pid=os.getpid(),
            baselines=orjson.loads(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY, default=str)),
        )

    @app.get(
        "/api/v1/config",
        response_model=ConfigOut,
        tags=["detection"],
        summary="The detection settings in force (config file + runtime overrides)",
        responses=_ERRORS,
    )
    def get_config(who: Who) -> ConfigOut:
        version, s = channel.effective(detection)
        return ConfigOut(version=version, settings=s)

    @app.post(
        "/api/v1/config",
        response_model=ConfigUpdateOut,
        tags=["detection"],
        summary="Change detection settings at runtime (partial update; applied by all workers)",
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "Any subset of the detection settings, nested as in GET (unknown keys are refused)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DetectionSettings"}}},
            }
        },
    )
    async def post_config(request: Request, who: Who) -> ConfigUpdateOut | JSONResponse:
        raw = await request.body()
        try:
            patch = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return _error(422, f"body is not valid JSON: {e}", fields=[_body_field(f"invalid JSON: {e}", "json")])
        if not isinstance(patch, dict):
            return _error(
                422,
                "body must be a JSON object",
                fields=[_body_field("must be a JSON object of detection settings", "type")],
            )
        try:
            version, s, changes = await run_in_threadpool(channel.update, detection, patch, who)
        except ValidationError as e:
            fields = _field_errors(list(e.errors()))
            for f in fields:
                f["loc"] = ["body", *f["loc"]]
            return _error(422, "invalid detection settings: " + ", ".join(f["field"] for f in fields), fields=fields)
        return ConfigUpdateOut(version=version, settings=s, changes=changes)

    @app.get(
        "/api/v1/config/audit",
        response_model=AuditLog,
        tags=["detection"],
        summary="Who changed which detection setting when (newest first)",
        responses=_ERRORS,
    )
    def audit(who: Who, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditLog:
        return AuditLog(
            entries=[
                AuditEntryOut(version=e.version, at=format_ts(e.at), who=e.who, changes=e.changes)
                for e in channel.audit(limit)
            ]
        )

    return app


def _body_field(msg: str, typ: str) -> dict[str, Any]:
    return {"field": "body", "loc": ["body"], "msg": msg, "type": typ}
