"""The HTTP API served alongside the flow (FastAPI + uvicorn; see :mod:`sentinel.api.app`).

=======================================  ==========================================================
``GET  /health``                         liveness, no auth
``GET  /ready``                          readiness, no auth: the flow runs in this process; the store works
``GET  /api/v1/anomalies``               stored anomalies; filters service, model, type, severity,
                                         since, until, limit
``GET  /api/v1/baselines/{svc}/{model}`` learned baselines of a key held by this process (else 404)
``GET  /api/v1/config``                  detection settings in force and their version
``POST /api/v1/config``                  partial update, validated, applied by every worker
``GET  /api/v1/config/audit``            who changed what, when (old → new)
``GET  /openapi.json``                   the OpenAPI spec
=======================================  ==========================================================

Importing this package does not import FastAPI; :func:`sentinel.api.server.start`
does, when the API is enabled.
"""
