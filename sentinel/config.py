"""Typed configuration (DESIGN.md ⚑ Config).

Sources, highest precedence first:

1. keyword arguments (tests, the CLI),
2. environment variables ``SENTINEL_<SECTION>__<KEY>`` (``SENTINEL_KAFKA__BROKERS``),
3. the YAML file named by ``--config`` or ``SENTINEL_CONFIG``,
4. the defaults below — the embedded default needs no configuration at all.

Lists accept JSON (``["a","b"]``) or comma-separated text (``a,b``). Secrets are
:class:`~pydantic.SecretStr` and never appear in ``repr``, logs or ``dump``.
Invalid configuration raises :class:`ConfigError` naming the key and the reason.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from sentinel.detect.settings import DetectionSettings
from sentinel.models import Severity

__all__ = ["CONFIG_ENV", "ENV_PREFIX", "ConfigError", "Settings", "load_settings"]

CONFIG_ENV = "SENTINEL_CONFIG"
ENV_PREFIX = "SENTINEL_"


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names every offending key."""


def _split_list(v: Any) -> Any:
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            return json.loads(s)
        return [p.strip() for p in s.split(",") if p.strip()]
    return v


StrList = Annotated[list[str], NoDecode]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceSettings(_Section):
    type: Literal["sample", "file", "kafka"] = "sample"
    path: Path | None = Field(default=None, description="Input file for type=file (.jsonl, .jsonl.gz, .pb.gz)")
    format: Literal["auto", "otlp_json", "otlp_proto", "native"] = "auto"

    @model_validator(mode="after")
    def _file_needs_path(self) -> SourceSettings:
        if self.type == "file" and self.path is None:
            raise ValueError("source.path is required when source.type is 'file'")
        return self


class KafkaSettings(_Section):
    brokers: StrList = Field(default_factory=lambda: ["127.0.0.1:9092"])
    topics: StrList = Field(default_factory=lambda: ["llm.telemetry"])
    dlq_topic: str | None = Field(default=None, description="Default: '<first input topic>.dlq'")
    anomalies_topic: str | None = Field(default=None, description="Mirror anomalies here (e.g. llm.anomalies)")
    batch_size: int = Field(
        default=50,
        ge=1,
        le=1_000_000,
        description="Max Kafka messages per poll and partition (~100–200 spans each); larger batches "
        "cost memory, not speed (benchmarks/README.md)",
    )
    starting_offset: Literal["beginning", "end"] = "beginning"
    tail: bool = True
    config: dict[str, str] = Field(default_factory=dict, description="Extra librdkafka settings (SASL/TLS…)")
    sasl_password: SecretStr | None = Field(
        default=None, description="Sets sasl.password without putting it in `config`"
    )

    _split = field_validator("brokers", "topics", mode="before")(_split_list)

    @field_validator("brokers", "topics")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one entry")
        return v

    @property
    def effective_dlq_topic(self) -> str:
        return self.dlq_topic or f"{self.topics[0]}.dlq"

    def librdkafka_config(self) -> dict[str, str]:
        cfg = dict(self.config)
        if self.sasl_password is not None:
            cfg["sasl.password"] = self.sasl_password.get_secret_value()
        return cfg


class OutputSettings(_Section):
    dir: Path = Path("./out")
    console: bool = True
    dlq: Literal["auto", "file", "kafka"] = Field(
        default="auto", description="Dead letters: auto = the Kafka DLQ topic for Kafka input, else dlq.jsonl"
    )


class ValidationSettings(_Section):
    max_latency_ms: float = Field(default=600_000.0, gt=0)
    max_tokens: int = Field(default=1_048_576, gt=0)
    max_cost_usd: float = Field(default=100.0, gt=0)
    min_timestamp: float = Field(default=946_684_800.0, description="2000-01-01T00:00:00Z")
    max_future_s: float = Field(default=86_400.0, ge=0)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class PrivacySettings(_Section):
    enabled: bool = True
    keep_attributes: StrList = Field(
        default_factory=list, description="Extra span attributes to keep (masked) on events"
    )
    redact_keys: StrList = Field(
        default_factory=lambda: [
            "api_key",
            "apikey",
            "password",
            "passwd",
            "token",
            "secret",
            "authorization",
            "cookie",
            "credential",
            "private_key",
        ],
        description="Attribute keys containing any of these (case-insensitive) are redacted",
    )

    _split = field_validator("keep_attributes", "redact_keys", mode="before")(_split_list)


class InfluxSettings(_Section):
    url: str | None = None
    org: str = "sentinel"
    bucket: str = "sentinel"
    token: SecretStr = SecretStr("")
    batch_size: int = Field(default=5000, ge=1)
    flush_interval_ms: int = Field(default=1000, ge=10)
    max_buffer: int = Field(default=100_000, ge=1, description="Points held while the server is down")
    timeout_ms: int = Field(default=10_000, ge=100)


class RabbitSettings(_Section):
    url: SecretStr | None = Field(default=None, description="amqp(s)://user:pass@host:port/vhost")
    exchange: str = "incidents"
    max_buffer: int = Field(default=100_000, ge=1, description="Alerts held per worker while the broker is down")
    close_timeout_s: float = Field(default=15.0, gt=0, description="How long shutdown waits to deliver the buffer")
    ca_file: Path | None = Field(default=None, description="amqps: CA bundle to verify the broker (default: system)")
    cert_file: Path | None = Field(default=None, description="amqps: client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(default=None, description="amqps: the client certificate's private key")
    min_severity: Severity = Severity.LOW
    services: StrList = Field(default_factory=list, description="Only these services (empty: all)")

    _split = field_validator("services", mode="before")(_split_list)


class WebhookSettings(_Section):
    url: str | None = None
    secret: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    max_buffer: int = Field(default=10_000, ge=1, description="Alerts held per worker while the endpoint is down")
    close_timeout_s: float = Field(default=10.0, gt=0, description="How long shutdown waits to deliver the buffer")
    min_severity: Severity = Severity.HIGH
    services: StrList = Field(default_factory=list)

    _split = field_validator("services", mode="before")(_split_list)


class WindowSettings(_Section):
    length_s: float = Field(default=60.0, gt=0)
    late_s: float = Field(default=10.0, ge=0)


class AlertingSettings(_Section):
    dedup_window_s: float = Field(default=300.0, gt=0)


class PriceSettings(_Section):
    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)


class MetricsSettings(_Section):
    enabled: bool = Field(default=False, description="Serve Prometheus metrics over HTTP")
    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=0, le=65535, description="0 = any free port")


class ApiSettings(_Section):
    enabled: bool = Field(default=False, description="Serve the HTTP API (one server per process)")
    host: str = Field(default="127.0.0.1", description="Bind address; without a token only 127.0.0.1/::1/localhost")
    port: int = Field(default=8080, ge=0, le=65535, description="0 = any free port")
    token: SecretStr | None = Field(
        default=None, description="Bearer token for everything but /health (required unless bound to loopback)"
    )
    max_body_bytes: int = Field(default=65_536, ge=1, description="Larger request bodies get 413")
    rate_limit_per_s: float = Field(default=20.0, gt=0, description="Token bucket per client: sustained requests/s")
    rate_limit_burst: int = Field(default=40, ge=1, description="…and bucket size (burst)")
    store_path: Path | None = Field(
        default=None, description="SQLite anomaly store + control channel (default: <output.dir>/sentinel.db)"
    )
    store_retention_s: float = Field(default=7 * 86_400.0, gt=0, description="Anomalies older than this are pruned")
    store_max_rows: int = Field(default=1_000_000, ge=1, description="…and beyond this many, the oldest")
    control_poll_s: float = Field(default=1.0, gt=0, description="How often workers look for new detection settings")
    baselines_interval_s: float = Field(
        default=5.0, ge=0, description="How often each key publishes its learned baselines to the API"
    )

    def effective_store_path(self, output_dir: Path) -> Path:
        return self.store_path if self.store_path is not None else output_dir / "sentinel.db"


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["json", "human"] = Field(default="json", description="json = one JSON object per line")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class RecoverySettings(_Section):
    dir: Path | None = None
    snapshot_s: float = Field(default=30.0, gt=0)
    backup_s: float = Field(default=600.0, ge=0)


class RuntimeSettings(_Section):
    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description="Python GC generation-0 threshold for the flow process; the start-up heap is frozen "
        "(sentinel/gc_tuning.py). 0 = CPython's defaults",
    )


class Settings(BaseSettings):
    """All of LLM-Sentinel's configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    source: SourceSettings = Field(default_factory=SourceSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    influxdb: InfluxSettings = Field(default_factory=InfluxSettings)
    rabbitmq: RabbitSettings = Field(default_factory=RabbitSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    windows: WindowSettings = Field(default_factory=WindowSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    pricing: dict[str, PriceSettings] = Field(default_factory=dict, description="Overrides/extends the defaults")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    recovery: RecoverySettings = Field(default_factory=RecoverySettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # keyword arguments > environment > the YAML file given to load_settings
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def dump(self) -> dict[str, Any]:
        """The effective configuration with secrets masked (safe to log or show)."""
        return self.model_dump(mode="json")


_yaml_data: ContextVar[dict[str, Any] | None] = ContextVar("sentinel_yaml_data", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """Feeds the parsed YAML file in below the environment."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return (_yaml_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get() or {})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        env = ENV_PREFIX + "__".join(str(p).upper() for p in e["loc"])
        lines.append(f"  {loc}: {msg} (env {env})")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ``$SENTINEL_CONFIG``), the environment and ``overrides``.

    Raises :class:`ConfigError` with one line per offending key.
    """
    file = path if path is not None else os.environ.get(CONFIG_ENV) or None
    origin = str(file) if file else "defaults + environment"
    token = _yaml_data.set(_read_yaml(Path(file)) if file else {})
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, origin)) from None
    except (ValueError, json.JSONDecodeError) as e:  # e.g. malformed JSON list in the environment
        raise ConfigError(f"invalid configuration ({origin}): {e}") from None
    finally:
        _yaml_data.reset(token)


def example_yaml() -> str:
    """Render every option with its default and description (``configs/sentinel.yaml`` is this output)."""
    lines = [
        "# LLM-Sentinel configuration — every option, with its default.",
        "# Generated by `python -m sentinel.config > configs/sentinel.yaml` (a test keeps it in sync).",
        "# Any key can be overridden from the environment as SENTINEL_<SECTION>__<KEY>, e.g.",
        "#   SENTINEL_KAFKA__BROKERS=a:9092,b:9092   SENTINEL_DETECTION__ZSCORE__THRESHOLD=5",
        "# Secrets (tokens, passwords, URLs with credentials) are never logged.",
        "",
    ]

    def scalar(v: Any) -> str:
        if isinstance(v, SecretStr):
            return '""' if not v.get_secret_value() else '"**********"'
        dumped = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
        return dumped.removesuffix("\n...").removesuffix("...").strip()

    def walk(model: BaseModel, indent: int) -> None:
        pad = "  " * indent
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if field.description:
                lines.append(f"{pad}# {field.description}")
            if isinstance(value, BaseModel):
                lines.append(f"{pad}{name}:")
                walk(value, indent + 1)
            else:
                if isinstance(value, Path):
                    value = str(value)
                elif isinstance(value, tuple):
                    value = list(value)
                elif hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
                    value = value.value  # enums
                lines.append(f"{pad}{name}: {scalar(value) if value is not None else 'null'}")

    settings = Settings.model_construct()
    for name in Settings.model_fields:
        section = getattr(settings, name)
        lines.append(f"{name}:" if isinstance(section, BaseModel) else f"{name}: {{}}")
        if isinstance(section, BaseModel):
            walk(section, 1)
        elif name == "pricing":
            lines.insert(-1, "# model-name prefix → USD per 1M tokens; overrides and extends the built-in table, e.g.")
            lines.insert(-1, "#   pricing: {my-finetune-v2: {input_per_1m: 3.0, output_per_1m: 12.0}}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(example_yaml())
