"""RabbitMQ alert publisher (DESIGN.md ⚑ Sinks).

Every alert that passes the channel's routing (``rabbitmq.min_severity``,
``rabbitmq.services``; see :mod:`sentinel.alerting.routing`) is published to the
durable topic exchange ``rabbitmq.exchange`` (default ``incidents``):

* routing key ``alert.<severity>.<service>`` (:attr:`AlertEvent.routing_key`),
* body: the ⚑ alert record as JSON (the same bytes as its ``alerts.jsonl`` line),
* properties: ``delivery_mode=2`` (persistent), ``content_type=application/json``,
  ``message_id`` = ``alert_id`` (stable across replays: consumers deduplicate on it),
  ``timestamp`` = the anomaly's event time (seconds), ``type=sentinel.alert``,
  ``app_id=llm-sentinel`` and headers ``service``, ``model``, ``anomaly_type``,
  ``severity``.

Publishing uses publisher confirms and ``mandatory=True``: an alert counts as
``published`` once the broker has confirmed it; a nack or a lost connection
retries it (reconnecting with exponential backoff — at-least-once, a duplicate
carries the same ``message_id``); a message the broker returns because no queue
is bound to its routing key counts as ``unroutable`` and is not retried (nobody
subscribed to that severity/service, which is not an error for a topic exchange).

The flow never waits for the broker: ``write_batch`` appends to a bounded
buffer and a background thread per worker owns the ``BlockingConnection`` (pika
is not thread-safe). While the broker is down alerts wait in the buffer
(``rabbitmq.max_buffer``; overflow drops the oldest, counted and logged) and are
delivered when it returns; shutdown waits up to ``rabbitmq.close_timeout_s``.
See :mod:`sentinel.sinks._buffered`.

TLS: an ``amqps://`` URL verifies the broker against the system CAs (or
``rabbitmq.ca_file``) and its host name; ``cert_file``/``key_file`` add a client
certificate. pika's own ``?ssl_options=…`` URL argument still works. Credentials
come from the URL (a secret: it is never logged).
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions as pex
from bytewax.outputs import DynamicSink

from sentinel.config import RabbitSettings
from sentinel.models import AlertEvent
from sentinel.sinks._buffered import PUBLISHED, Backoff, BufferedPartition, Outcome, Result, Transport, alert_partition
from sentinel.sinks.jsonl import dumps

__all__ = ["RabbitAlertSink", "RabbitTransport", "connection_parameters", "message_properties"]

log = logging.getLogger(__name__)

CHANNEL = "rabbitmq"
#: connection settings applied unless the URL's query string sets them
_URL_DEFAULTS: dict[str, float] = {
    "connection_attempts": 1,  # our own backoff retries
    "socket_timeout": 5.0,
    "stack_timeout": 10.0,
    "blocked_connection_timeout": 30.0,  # broker out of memory/disk: reconnect instead of hanging
}
_MAX_CHANNEL_ERRORS = 5  # the broker closed the channel on the same alert this often: give up on it


class _NoReturnedWarnings(logging.Filter):
    """pika warns once per returned (unroutable) message, body included; we count those instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Published message was returned")


_PIKA_BLOCKING_LOG = logging.getLogger("pika.adapters.blocking_connection")


def _install_log_filter() -> None:
    if not any(isinstance(f, _NoReturnedWarnings) for f in _PIKA_BLOCKING_LOG.filters):
        _PIKA_BLOCKING_LOG.addFilter(_NoReturnedWarnings())


def connection_parameters(settings: RabbitSettings, connection_name: str = "llm-sentinel") -> pika.URLParameters:
    """pika parameters from ``settings.url`` plus our timeouts and TLS options."""
    if settings.url is None:
        raise ValueError("rabbitmq.url is not set")
    url = settings.url.get_secret_value()
    params = pika.URLParameters(url)
    query = parse_qs(urlsplit(url).query)
    for key, value in _URL_DEFAULTS.items():
        if key not in query:
            setattr(params, key, int(value) if key == "connection_attempts" else value)
    params.client_properties = {"connection_name": connection_name, "product": "llm-sentinel"}
    tls_files = settings.ca_file or settings.cert_file or settings.key_file
    if params.ssl_options is None:
        if tls_files:
            raise ValueError("rabbitmq.ca_file/cert_file/key_file need an amqps:// url")
        return params
    if "ssl_options" in query:
        ctx = params.ssl_options.context
    else:
        ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        if settings.cert_file:
            ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
    # pika leaves server_hostname unset, which a verifying context refuses ("check_hostname requires
    # server_hostname"): verify the host of the URL.
    params.ssl_options = pika.SSLOptions(ctx, params.ssl_options.server_hostname or params.host)
    return params


def message_properties(alert: AlertEvent) -> pika.BasicProperties:
    a = alert.anomaly
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=alert.alert_id,
        timestamp=int(a.timestamp),
        type="sentinel.alert",
        app_id="llm-sentinel",
        headers={
            "service": a.service,
            "model": a.model,
            "anomaly_type": a.anomaly_type.value,
            "severity": a.severity.value,
        },
    )


class RabbitTransport(Transport[AlertEvent]):
    """One ``BlockingConnection`` + confirming channel; used only from the partition's thread."""

    max_attempts = None  # a down broker is retried until it returns (or the close timeout)

    def __init__(self, settings: RabbitSettings, connection_name: str = "llm-sentinel") -> None:
        self._settings = settings
        self._exchange = settings.exchange
        self._connection_name = connection_name
        self._conn: pika.BlockingConnection | None = None
        self._ch: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._unroutable_logged: set[str] = set()
        self._where = ""
        _install_log_filter()

    def _connect(self) -> pika.adapters.blocking_connection.BlockingChannel:
        params = connection_parameters(self._settings, self._connection_name)
        self._where = f"{params.host}:{params.port}{params.virtual_host}"
        conn = pika.BlockingConnection(params)
        try:
            ch = conn.channel()
            ch.exchange_declare(exchange=self._exchange, exchange_type="topic", durable=True)
            ch.confirm_delivery()
        except BaseException:
            _quietly_close(conn)
            raise
        self._conn, self._ch = conn, ch
        log.info("rabbitmq: connected to %s, publishing to exchange %r", self._where, self._exchange)
        return ch

    def open(self) -> None:
        try:
            self._connect()
        except (pex.AMQPError, OSError) as e:
            log.warning("rabbitmq: cannot connect to %s yet (%r); will retry when alerts arrive", self._where, e)

    def send(self, item: AlertEvent, attempt: int) -> Result:
        ch = self._ch
        if ch is None or not ch.is_open:
            self.reset()
            try:
                ch = self._connect()
            except (pex.AMQPError, OSError) as e:
                self.reset()
                return Result(Outcome.RETRY, f"cannot connect to {self._where}: {e!r}")
        body = dumps(item.to_dict())
        try:
            ch.basic_publish(self._exchange, item.routing_key, body, message_properties(item), mandatory=True)
        except pex.UnroutableError:
            self._log_unroutable(item.routing_key)
            return Result(Outcome.UNROUTABLE)
        except pex.NackError:
            return Result(Outcome.RETRY, "nacked by the broker")
        except (pex.AMQPConnectionError, OSError) as e:
            self.reset()
            return Result(Outcome.RETRY, f"connection to {self._where} lost: {e!r}")
        except pex.AMQPChannelError as e:
            self.reset()
            if attempt >= _MAX_CHANNEL_ERRORS:
                return Result(Outcome.FAILED, f"the broker refused it {attempt} times: {e!r}")
            return Result(Outcome.RETRY, f"channel error: {e!r}")
        return PUBLISHED

    def idle(self) -> None:
        # serve heartbeats and notice a dead connection while no alerts flow
        if self._conn is not None and self._conn.is_open:
            try:
                self._conn.process_data_events(time_limit=0)
            except (pex.AMQPError, OSError) as e:
                log.warning("rabbitmq: connection to %s lost while idle: %r", self._where, e)
                self.reset()

    def reset(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None:
            _quietly_close(conn)

    def close(self) -> None:
        self.reset()

    def _log_unroutable(self, routing_key: str) -> None:
        if routing_key not in self._unroutable_logged and len(self._unroutable_logged) < 1000:
            self._unroutable_logged.add(routing_key)
            log.info(
                "rabbitmq: no queue bound for %r on exchange %r (counted as unroutable)", routing_key, self._exchange
            )


def _quietly_close(conn: pika.BlockingConnection) -> None:
    try:
        if conn.is_open:
            conn.close()
    except Exception as e:  # already broken: nothing to release
        log.debug("rabbitmq: closing a broken connection: %r", e)


class RabbitAlertSink(DynamicSink[AlertEvent]):
    """Publish alerts to RabbitMQ from every worker (one connection and thread per worker)."""

    def __init__(self, settings: RabbitSettings, *, backoff: Backoff | None = None) -> None:
        connection_parameters(settings)  # fail fast on a malformed URL or TLS options
        self._settings = settings
        self._backoff = backoff or Backoff(initial_s=0.25, max_s=5.0)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> BufferedPartition[AlertEvent]:
        s = self._settings
        transport = RabbitTransport(s, connection_name=f"llm-sentinel {step_id} worker {worker_index}")
        return alert_partition(transport, CHANNEL, s, self._backoff, f"sentinel-rabbitmq-{worker_index}")
