from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from sentinel.cli import main
from sentinel.config import ConfigError, example_yaml, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("SENTINEL_"):
            monkeypatch.delenv(k)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_need_no_config() -> None:
    s = load_settings()
    assert s.source.type == "sample"
    assert s.kafka.topics == ["llm.telemetry"]
    assert s.kafka.effective_dlq_topic == "llm.telemetry.dlq"
    assert s.influxdb.url is None and s.rabbitmq.url is None


def test_yaml_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, "kafka:\n  brokers: [a:1]\n  batch_size: 10\nwindows:\n  length_s: 30\n")
    assert load_settings(p).kafka.brokers == ["a:1"]
    monkeypatch.setenv("SENTINEL_KAFKA__BROKERS", "b:2, c:3")
    s = load_settings(p)
    assert s.kafka.brokers == ["b:2", "c:3"]  # env wins over the file
    assert s.kafka.batch_size == 10  # untouched keys of the file survive
    assert s.windows.length_s == 30
    monkeypatch.setenv("SENTINEL_KAFKA__TOPICS", '["x","y"]')
    assert load_settings(p).kafka.topics == ["x", "y"]


def test_config_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, "output:\n  dir: /tmp/elsewhere\n")
    monkeypatch.setenv("SENTINEL_CONFIG", str(p))
    assert str(load_settings().output.dir) == "/tmp/elsewhere"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kafka:\n  batch_size: 0\n", "kafka.batch_size"),
        ("kafka:\n  brokerz: [a]\n", "kafka.brokerz: unknown key"),
        ("windows:\n  length_s: -5\n", "windows.length_s"),
        ("source:\n  type: file\n", "source.path is required"),
        ("source:\n  type: carrier-pigeon\n", "source.type"),
        ("[1, 2]\n", "top level must be a mapping"),
        ("kafka: [\n", "not valid YAML"),
        ("pricing:\n  my-model: {input_per_1m: -1, output_per_1m: 2}\n", "pricing.my-model.input_per_1m"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, text))
    assert needle in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


def test_env_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_KAFKA__BATCH_SIZE", "many")
    with pytest.raises(ConfigError, match="SENTINEL_KAFKA__BATCH_SIZE"):
        load_settings()


def test_secrets_are_masked(tmp_path: Path) -> None:
    p = write(tmp_path, "influxdb:\n  url: http://x\n  token: s3cr3t\nrabbitmq:\n  url: amqp://u:pw@h/\n")
    s = load_settings(p)
    assert isinstance(s.influxdb.token, SecretStr)
    assert s.influxdb.token.get_secret_value() == "s3cr3t"
    dumped = str(s.dump()) + repr(s)
    assert "s3cr3t" not in dumped and "pw@" not in dumped


def test_example_config_is_valid_and_complete() -> None:
    """configs/sentinel.yaml documents every option: it loads to the defaults and is generated, never stale."""
    path = REPO / "configs" / "sentinel.yaml"
    assert path.read_text() == example_yaml(), "regenerate: python -m sentinel.config > configs/sentinel.yaml"
    assert load_settings(path) == load_settings()


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write(tmp_path, "windows:\n  late_s: 5\n"))]) == 0
    assert main(["check-config", str(write(tmp_path, "windows:\n  late_s: -1\n"))]) == 1
    assert "windows.late_s" in capsys.readouterr().err
