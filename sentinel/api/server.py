"""Serve the API from a daemon thread next to the dataflow (one uvicorn server per process).

:func:`start` is idempotent per process and returns the bound ``(host, port)``
(useful with ``api.port: 0``). It refuses to start without a token unless the
server binds to loopback — an unauthenticated API that can change detection
thresholds must not be reachable from the network.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from pathlib import Path

from sentinel.config import ApiSettings, ConfigError
from sentinel.detect.settings import DetectionSettings

__all__ = ["check_bind", "start"]

log = logging.getLogger(__name__)

_LOOPBACK_NAMES = frozenset({"localhost"})
_started: tuple[str, int] | None = None
_lock = threading.Lock()


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(api: ApiSettings) -> None:
    """Raise :class:`ConfigError` when the API would be reachable off-host without a token."""
    has_token = api.token is not None and bool(api.token.get_secret_value())
    if not has_token and not _is_loopback(api.host):
        raise ConfigError(
            f"api.token is required when api.host is not loopback (api.host={api.host!r}); "
            "set SENTINEL_API__TOKEN or bind to 127.0.0.1"
        )


def start(api: ApiSettings, detection: DetectionSettings, store_path: Path, timeout_s: float = 10.0) -> tuple[str, int]:
    """Start the server (once per process) and wait until it listens."""
    global _started
    with _lock:
        if _started is not None:
            return _started
        check_bind(api)
        import uvicorn

        from sentinel.api.app import create_app

        app = create_app(api, detection, store_path)
        config = uvicorn.Config(
            app,
            host=api.host,
            port=api.port,
            log_config=None,  # our logging (sentinel.logs) formats and masks uvicorn's records
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="sentinel-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP API could not start on {api.host}:{api.port} (see the log)")
            time.sleep(0.01)
        port = api.port
        for s in server.servers:
            for sock in s.sockets:
                port = int(sock.getsockname()[1])
                break
        _started = (api.host, port)
        log.info("api: serving http://%s:%d", api.host, port, extra={"auth": api.token is not None})
        return _started
