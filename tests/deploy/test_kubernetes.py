"""deploy/kubernetes renders (real kustomize, the one inside kubectl), every object is valid against the
Kubernetes schemas (kubernetes-validate, offline, strict: unknown fields fail), and the wiring holds: the
env names and flags are ones hps reads, ports and probe paths exist in the app, every Secret key referenced
is generated, selectors select, and only the API and the migration reach the database."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import typer
import yaml

from harness.databases import postgres_database
from hps.cli.main import app as cli_app
from hps.server.api.app import create_app
from hps.server.config import Settings
from hps.server.store.schema import upgrade

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_ROOT = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["example", "in-cluster-postgres"]
# The oldest Kubernetes docs/deploy.md promises, and the newest the schemas know.
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
# Custom resources have no schema in kubernetes-validate; their wiring is checked below instead.
CUSTOM_KINDS = {"ServiceMonitor"}
# Secrets the cluster provides, not the overlay: the Ingress certificate (e.g. from cert-manager).
EXTERNAL_SECRETS = {"hps-tls"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

Obj = dict[str, Any]


def render(target: str) -> list[Obj]:
    """``kubectl kustomize`` of a folder under deploy/kubernetes, as a list of objects."""
    kubectl = shutil.which("kubectl")
    # A missing tool fails the test, never skips it (like the PostgreSQL server the suite needs).
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/kubernetes"
    done = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE_ROOT / target)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return render(str(Path("overlays") / request.param))


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


def pod_specs(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod template) for every Deployment, StatefulSet and Job."""
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]


def containers(template: Obj) -> list[Obj]:
    spec = template["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def secret_value(objects: list[Obj], name: str, key: str) -> str:
    secret = named(objects, "Secret", name)
    assert key in secret.get("data", {}), f"Secret {name} has no key {key!r}"
    return base64.b64decode(secret["data"][key]).decode()


def env_of(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The container's environment as the pod would see it, Secret values resolved."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_value(objects, ref["name"], ref["key"])
    return env


def hps_command(args: list[str]) -> tuple[Any, list[str]]:
    """The (click) command an ``hps ...`` argv runs, and the arguments left for it. Typer ships its own
    copy of click, so groups are recognised by their ``commands``, not by class."""
    assert args[0] == "hps", args
    command: Any = typer.main.get_command(cli_app)
    rest = args[1:]
    while getattr(command, "commands", None) is not None:
        assert rest and rest[0] in command.commands, f"hps has no command {rest[:1]} ({args})"
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def hps_containers(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container that runs the hps image."""
    for workload, template in pod_specs(objects):
        for container in containers(template):
            if container["image"].split("/")[-1].split(":")[0] == "hps":
                yield workload, container


def container_argv(container: Obj) -> list[str]:
    command = list(container.get("command", [])) + list(container.get("args", []))
    if command[:2] == ["sh", "-c"]:  # the init container's wait loop: the hps command inside it
        inner = command[2].split(";")[0].removeprefix("until ").split()
        return inner
    return command


def test_every_object_is_valid_against_the_kubernetes_schemas(objects: list[Obj]) -> None:
    checked = 0
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {where}: {exc.message}")
        checked += 1
    assert checked >= 9


def test_the_parts_the_issue_asks_for_are_there(objects: list[Obj]) -> None:
    api = named(objects, "Deployment", "hps-api")
    assert api["spec"]["replicas"] >= 2
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert named(objects, "PodDisruptionBudget", "hps-api")["spec"]["minAvailable"] >= 1
    assert named(objects, "Job", "hps-migrate")["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "hps",
        "db",
        "upgrade",
    ]
    named(objects, "Service", "hps-api")
    named(objects, "NetworkPolicy", "hps-worker-egress")
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])


def test_workers_get_one_gpu_all_devices_and_a_token_never_the_database(objects: list[Obj]) -> None:
    worker = named(objects, "Deployment", "hps-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    command, rest = hps_command(container["command"])
    env = env_of(objects, container)
    assert "HPS_DATABASE_URL" not in env
    token = next(item for item in container["env"] if item["name"] == "HPS_TOKEN")
    assert "secretKeyRef" in token["valueFrom"]
    # Parse the worker's argv and env the way `hps worker` will: the token and URL arrive through env.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        params = command.make_context("worker", list(rest)).params
    assert params["device"] == "all"
    assert params["token"] == env["HPS_TOKEN"]
    service = named(objects, "Service", "hps-api")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert params["api"] == f"http://hps-api:{port}"


def test_every_hps_env_name_and_flag_is_one_hps_reads(objects: list[Obj]) -> None:
    settings_names = {f"HPS_{field.upper()}" for field in Settings.model_fields}
    seen = 0
    for workload, container in hps_containers(objects):
        command, rest = hps_command(container_argv(container))
        env = env_of(objects, container)
        read = {name for param in command.params for name in _envvars(param)}
        if command.name != "worker":  # the server and `hps db` read Settings; workers do not
            read |= settings_names
            # The values parse as Settings (what the server checks at start), with these names.
            Settings(**{name.removeprefix("HPS_").lower(): value for name, value in env.items()})
        unknown = {name for name in env if name.startswith("HPS_")} - read
        assert not unknown, f"{workload['metadata']['name']}/{container['name']}: nothing reads {unknown}"
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            command.make_context(str(command.name), list(rest))  # unknown flags or bad values raise here
        seen += 1
    assert seen >= 4  # migrate, the API and its init container, the worker


def _envvars(param: Any) -> list[str]:
    envvar = getattr(param, "envvar", None)
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def test_ports_and_probe_paths_exist_in_the_app(objects: list[Obj], tmp_path: Path) -> None:
    # The app's own OpenAPI document lists every route it serves (API.md holds it to that): the GET ones.
    paths = create_app(Settings(data_dir=tmp_path)).openapi()["paths"]
    routes = {path for path, methods in paths.items() if "get" in methods}
    api = named(objects, "Deployment", "hps-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    argv = container["command"]
    assert int(argv[argv.index("--port") + 1]) == ports["http"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # reachable from the Service, not loopback only
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes, f"{probe} {get['path']} is no route of the app"
        assert get["port"] in ports
    assert "/metrics" in routes
    service = named(objects, "Service", "hps-api")
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        assert ingress["spec"]["tls"], "the Ingress must terminate TLS"
        assert set(ingress["spec"]["tls"][0]["hosts"]) == {rule["host"] for rule in ingress["spec"]["rules"]}
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                target = named(objects, "Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in target["spec"]["ports"]}
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
            assert endpoint["path"] in routes


def test_every_secret_key_referenced_is_generated(objects: list[Obj]) -> None:
    references: list[tuple[str, str | None]] = []
    for _, template in pod_specs(objects):
        for container in containers(template):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    references.append((ref["name"], ref["key"]))
    for obj in objects:
        if obj["kind"] == "Ingress":
            references += [(tls["secretName"], None) for tls in obj["spec"]["tls"]]
        if obj["kind"] == "ServiceMonitor":
            for endpoint in obj["spec"]["endpoints"]:
                credentials = endpoint["authorization"]["credentials"]
                references.append((credentials["name"], credentials["key"]))
    assert references
    for name, key in references:
        if name in EXTERNAL_SECRETS:
            continue
        if key is None:
            named(objects, "Secret", name)
        else:
            assert secret_value(objects, name, key)


def test_selectors_select_what_they_mean(objects: list[Obj]) -> None:
    pods = {
        workload["metadata"]["name"]: template["metadata"]["labels"]
        for workload, template in pod_specs(objects)
    }
    for workload, template in pod_specs(objects):
        selector = workload["spec"].get("selector", {}).get("matchLabels")
        if selector is not None:  # Jobs make their own
            assert selects(selector, template["metadata"]["labels"]), workload["metadata"]["name"]
    for kind, name, expected in [
        ("Service", "hps-api", {"hps-api"}),
        ("PodDisruptionBudget", "hps-api", {"hps-api"}),
    ]:
        obj = named(objects, kind, name)
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert {pod for pod, labels in pods.items() if selects(selector, labels)} == expected, (kind, name)
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        assert selects(
            monitor["spec"]["selector"]["matchLabels"],
            named(objects, "Service", "hps-api")["metadata"]["labels"],
        )


def test_only_the_api_and_the_migration_reach_the_database(objects: list[Obj]) -> None:
    pods = {workload["metadata"]["name"]: template for workload, template in pod_specs(objects)}
    with_url = {
        name
        for name, template in pods.items()
        for container in containers(template)
        if any(item["name"] == "HPS_DATABASE_URL" for item in container.get("env", []))
    }
    assert with_url == {"hps-api", "hps-migrate"}
    # Workers: egress to the API's port and DNS, nothing else (wherever the database is).
    policy = named(objects, "NetworkPolicy", "hps-worker-egress")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pods["hps-worker"]["metadata"]["labels"])
    for rule in policy["spec"]["egress"]:
        ports = {port["port"] for port in rule["ports"]}
        if "to" in rule:
            (peer,) = rule["to"]
            assert {
                name
                for name, t in pods.items()
                if selects(peer["podSelector"]["matchLabels"], t["metadata"]["labels"])
            } == {"hps-api"}
            assert ports == {8000}
        else:
            assert ports == {53}  # DNS, to any resolver
    # An in-cluster database admits exactly the API and the migration.
    database_policies = [
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "hps-postgres-ingress"
    ]
    if "hps-postgres" in pods:
        (policy,) = database_policies
        assert selects(
            policy["spec"]["podSelector"]["matchLabels"], pods["hps-postgres"]["metadata"]["labels"]
        )
        (rule,) = policy["spec"]["ingress"]
        admitted = {
            name
            for name, template in pods.items()
            for peer in rule["from"]
            if selects(peer["podSelector"]["matchLabels"], template["metadata"]["labels"])
        }
        assert admitted == {"hps-api", "hps-migrate"}
        assert {port["port"] for port in rule["ports"]} == {5432}


def test_the_database_url_points_at_the_database(objects: list[Obj]) -> None:
    (api,) = named(objects, "Deployment", "hps-api")["spec"]["template"]["spec"]["containers"]
    url = env_of(objects, api)["HPS_DATABASE_URL"]
    assert Settings(database_url=url).resolved_database_url.startswith("postgresql+psycopg://")
    if any(o["kind"] == "StatefulSet" for o in objects):
        parts = urlsplit(url)
        service = named(objects, "Service", "hps-postgres")
        assert parts.hostname == service["metadata"]["name"]
        assert parts.port == service["spec"]["ports"][0]["port"]
        (database,) = named(objects, "StatefulSet", "hps-postgres")["spec"]["template"]["spec"]["containers"]
        env = env_of(objects, database)
        assert (parts.username, parts.password, parts.path.lstrip("/")) == (
            env["POSTGRES_USER"],
            env["POSTGRES_PASSWORD"],
            env["POSTGRES_DB"],
        )


def test_the_api_waits_for_the_migration_it_runs_after(objects: list[Obj]) -> None:
    """The API's init container loops on `hps db current` against the Job's database, and its readiness
    is /readyz (false while the schema is behind): no replica serves before the Job migrated."""
    api = named(objects, "Deployment", "hps-api")["spec"]["template"]["spec"]
    (wait,) = api["initContainers"]
    assert container_argv(wait) == ["hps", "db", "current"]
    job = named(objects, "Job", "hps-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(objects, wait)["HPS_DATABASE_URL"] == env_of(objects, job)["HPS_DATABASE_URL"]
    assert wait["image"] == job["image"] == api["containers"][0]["image"]  # the same head revision


@pytest.mark.postgres
def test_hps_db_current_fails_until_the_migration_ran(tmp_path: Path) -> None:
    """What the init container's loop relies on, on PostgreSQL: exit 1 on a database the Job has not
    migrated yet, 0 once `hps db upgrade` ran."""

    def hps(*args: str) -> int:
        env = {**os.environ, "HPS_DATABASE_URL": url, "HPS_DATA_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "hps.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, timeout=120).returncode

    with postgres_database() as url:
        assert hps("db", "current") == 1
        upgrade(url)  # what the Job's `hps db upgrade` does (its CLI has tests in tests/service)
        assert hps("db", "current") == 0
