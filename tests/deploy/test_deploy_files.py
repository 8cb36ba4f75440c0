"""Checks of the deployment files in deploy/ that need no Docker engine, cluster or network.

What these tests cannot check: that the image builds, that the containers start and reach each
other, and that Helm renders the values (no `helm` binary or chart copy is used here).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.config import pg_config
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer

from vscope_pipeline.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
HELM_VALUES_FILE = DEPLOY / "helm" / "values.yaml"

# Values that must come from env files or Kubernetes Secrets, never from a committed file.
SECRET_NAMES = (
    "OVH_APPLICATION_KEY",
    "OVH_APPLICATION_SECRET",
    "OVH_CONSUMER_KEY",
    "OVH_CLIENT_ID",
    "OVH_CLIENT_SECRET",
    "VSCOPE_OPENTSDB_TOKEN",
    "DAGSTER_PG_PASSWORD",
    "POSTGRES_PASSWORD",
)

# Values for the DAGSTER_PG_* variables that deploy/dagster.yaml reads.
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "pg-test-password",
    "DAGSTER_PG_DB": "dagster",
}

FAKE_OVH_KEYS = {
    "OVH_APPLICATION_KEY": "test-application-key",
    "OVH_APPLICATION_SECRET": "test-application-secret",
    "OVH_CONSUMER_KEY": "test-consumer-key",
}


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=value lines the way Docker Compose reads an env_file (no quoting is used)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def helm_values() -> dict[str, Any]:
    return load_yaml(HELM_VALUES_FILE)


@pytest.fixture(scope="module")
def dagster_tool() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["dagster"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # Backslash-newline continuations are joined, so each instruction is one line.
    return (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")


def instructions(dockerfile: str, keyword: str) -> list[str]:
    """Return the arguments of every `keyword` instruction of the Dockerfile, in order."""
    prefix = keyword + " "
    return [
        line[len(prefix) :].strip() for line in dockerfile.splitlines() if line.startswith(prefix)
    ]


def image_cmd(dockerfile: str) -> list[str]:
    (cmd,) = instructions(dockerfile, "CMD")
    return json.loads(cmd)


# ---------------------------------------------------------------------------------------------
# Every file parses


@pytest.mark.parametrize(
    "name",
    ["docker-compose.yaml", "dagster.yaml", "workspace.yaml", "helm/values.yaml"],
)
def test_yaml_file_parses(name):
    assert isinstance(load_yaml(DEPLOY / name), dict)


def test_no_unlisted_yaml_files():
    found = sorted(str(path.relative_to(DEPLOY)) for path in DEPLOY.rglob("*.yaml"))
    assert found == ["dagster.yaml", "docker-compose.yaml", "helm/values.yaml", "workspace.yaml"]


# ---------------------------------------------------------------------------------------------
# docker-compose.yaml


def test_compose_service_names(services):
    assert sorted(services) == ["code", "daemon", "postgres", "webserver"]


def test_compose_published_ports(services):
    published = {name: service.get("ports") for name, service in services.items()}
    # Only the web UI is published, and only on the host's loopback interface.
    assert published == {
        "postgres": None,
        "code": None,
        "webserver": ["127.0.0.1:3000:3000"],
        "daemon": None,
    }


def test_compose_code_port_matches_workspace(services):
    workspace = load_yaml(DEPLOY / "workspace.yaml")
    (location,) = workspace["load_from"]
    server = location["grpc_server"]
    assert services["code"]["expose"] == ["4000"]
    assert server["host"] == "code"
    assert server["port"] == 4000


def test_compose_healthchecks(services):
    tests = {name: service["healthcheck"]["test"] for name, service in services.items()}
    assert tests["postgres"] == [
        "CMD-SHELL",
        'pg_isready -U "$$DAGSTER_PG_USER" -d "$$DAGSTER_PG_DB"',
    ]
    assert tests["code"] == ["CMD", "dagster", "api", "grpc-health-check", "--port", "4000"]
    assert tests["webserver"][:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:3000/server_info" in tests["webserver"][3]
    assert tests["daemon"] == ["CMD", "dagster-daemon", "liveness-check"]


def test_compose_waits_for_healthy(services):
    conditions = {
        name: {
            dependency: detail["condition"]
            for dependency, detail in service.get("depends_on", {}).items()
        }
        for name, service in services.items()
    }
    assert conditions == {
        "postgres": {},
        "code": {"postgres": "service_healthy"},
        "webserver": {"postgres": "service_healthy", "code": "service_healthy"},
        "daemon": {"postgres": "service_healthy", "code": "service_healthy"},
    }


def test_compose_env_files(services):
    env_files = {name: service["env_file"] for name, service in services.items()}
    # The OVH secrets reach only the container where runs execute.
    assert env_files == {
        "postgres": ["postgres.env"],
        "code": ["postgres.env", "pipeline.env"],
        "webserver": ["postgres.env"],
        "daemon": ["postgres.env"],
    }


@pytest.mark.parametrize("name", ["postgres.env", "pipeline.env"])
def test_env_file_has_example(name):
    assert (DEPLOY / f"{name}.example").is_file()


@pytest.mark.parametrize("name", ["postgres.env", "pipeline.env"])
def test_env_file_ignored_by_git(name):
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", f"deploy/{name}"],
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"deploy/{name} is not git-ignored"


def test_env_file_examples_leave_secrets_empty():
    for example in sorted(DEPLOY.glob("*.env.example")):
        values = read_env_file(example)
        for name in SECRET_NAMES:
            assert values.get(name, "") == "", f"{example.name} sets {name}"


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def walk_keys(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from walk_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_keys(item)


def test_compose_no_secret_literal(services):
    for name, service in services.items():
        environment = service.get("environment", {})
        for secret in SECRET_NAMES:
            assert secret not in environment, f"service {name} sets {secret} in the file"
    # A secret may appear in an assignment only as a reference to another variable.
    assignment = re.compile(rf"\b({'|'.join(SECRET_NAMES)})=(\S*)")
    for text in walk_strings(services):
        for secret, value in assignment.findall(text):
            assert value.startswith(('"$$', "$$")), f"{secret} is assigned {value!r}"


def test_compose_named_volumes_declared(compose, services):
    used = set()
    for service in services.values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), f"bind mount source {source} is missing"
            else:
                used.add(source)
    assert used == set(compose["volumes"])


def test_compose_build_uses_dockerfile(services):
    build = services["code"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()


def test_compose_services_share_image(services):
    images = {name: service["image"] for name, service in services.items()}
    assert images == {
        "postgres": "postgres:17",
        "code": "vscope-pipeline:0.1.0",
        "webserver": "vscope-pipeline:0.1.0",
        "daemon": "vscope-pipeline:0.1.0",
    }


def parse_dagster_command(argv: list[str]) -> click.Context:
    """Parse a container command with the click command it names, so unknown options fail."""
    program, *args = argv
    if program == "dagster-webserver":
        from dagster_webserver.cli import cli as webserver_cli

        return webserver_cli.make_context(program, args)
    if program == "dagster-daemon":
        from dagster._daemon.cli import cli as daemon_cli

        group = daemon_cli
    else:
        assert program == "dagster", f"unexpected program {program!r}"
        from dagster._cli import cli as dagster_cli

        group = dagster_cli
    command: click.Command = group
    while isinstance(command, click.Group):
        name, *args = args
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"{argv!r}: {name!r} is not a command"
        command = found
    return command.make_context(program, args)


def host_paths(service: dict[str, Any], argv: list[str]) -> list[str]:
    """Replace each container path in `argv` that a bind mount provides by its file in deploy/."""
    mounts = {}
    for mount in service.get("volumes", []):
        source, target = mount.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = str(DEPLOY / source)
    return [mounts.get(arg, arg) for arg in argv]


def test_compose_commands_parse(services, dockerfile):
    workspace = str(DEPLOY / "workspace.yaml")
    webserver_argv = host_paths(services["webserver"], services["webserver"]["command"])
    daemon_argv = host_paths(services["daemon"], services["daemon"]["command"])

    webserver = parse_dagster_command(webserver_argv)
    daemon = parse_dagster_command(daemon_argv)
    health = parse_dagster_command(services["code"]["healthcheck"]["test"][1:])
    code_server = parse_dagster_command(image_cmd(dockerfile))

    assert webserver.params["port"] == 3000
    assert webserver.params["workspace"] == (workspace,)
    assert daemon.params["workspace"] == (workspace,)
    assert health.params["port"] == 4000
    assert code_server.params["port"] == 4000


def test_compose_dagster_home_mounts(services, dockerfile):
    (env_line,) = [line for line in instructions(dockerfile, "ENV") if "DAGSTER_HOME=" in line]
    dagster_home = re.search(r"DAGSTER_HOME=(\S+)", env_line).group(1)
    for name in ("code", "webserver", "daemon"):
        mounts = services[name]["volumes"]
        assert f"./dagster.yaml:{dagster_home}/dagster.yaml:ro" in mounts, name


# ---------------------------------------------------------------------------------------------
# deploy/dagster.yaml, the instance of the compose services


def resolve_postgres_storage(config: Mapping[str, Any]) -> Any:
    """Resolve the `storage: postgres:` section as dagster-postgres does, env references included.

    dagster_instance_config checks the section's shape but keeps `env:` references as they are,
    so the values are resolved here with the same schema (Dagster 1.13 `pg_config`).
    """
    return process_config(resolve_to_config_type(pg_config()), config["storage"]["postgres"])


def test_compose_instance_config_valid(tmp_path, monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())

    config, custom_class = dagster_instance_config(str(tmp_path))
    storage = resolve_postgres_storage(config)

    assert custom_class is None
    assert storage.success, storage.errors
    assert storage.value["postgres_db"] == {
        "hostname": "postgres",
        "port": 5432,
        "username": "dagster",
        "password": "pg-test-password",
        "db_name": "dagster",
        "params": {},
        "scheme": "postgresql+psycopg2",
    }


def test_compose_instance_needs_password(tmp_path, monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())

    config, _ = dagster_instance_config(str(tmp_path))
    storage = resolve_postgres_storage(config)

    assert not storage.success
    (error,) = storage.errors
    assert 'environment variable "DAGSTER_PG_PASSWORD" which is not set' in error.message


def test_compose_instance_rejects_typo(tmp_path, monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    text = (DEPLOY / "dagster.yaml").read_text().replace("max_concurrent_runs", "max_runs")
    (tmp_path / "dagster.yaml").write_text(text)

    with pytest.raises(DagsterInvalidConfigError) as raised:
        dagster_instance_config(str(tmp_path))

    assert 'Received unexpected config entry "max_runs"' in str(raised.value)


@pytest.mark.parametrize(
    ("section", "expected"),
    [("run_launcher", DefaultRunLauncher), ("run_coordinator", QueuedRunCoordinator)],
)
def test_compose_instance_classes_load(section, expected):
    entry = load_yaml(DEPLOY / "dagster.yaml")[section]
    # ConfigurableClassData maps the public `dagster.core` module names to `dagster._core`.
    data = ConfigurableClassData(entry["module"], entry["class"], yaml.dump(entry.get("config")))
    assert class_from_code_pointer(data.module_name, data.class_name) is expected


def test_limits_match_single_machine(helm_values):
    single_machine = load_yaml(ROOT / "dagster.yaml")["concurrency"]
    compose_limits = load_yaml(DEPLOY / "dagster.yaml")["concurrency"]
    helm_limits = helm_values["concurrency"]
    assert compose_limits == single_machine
    assert helm_limits["enabled"] is True
    assert helm_limits["runs"]["maxConcurrentRuns"] == single_machine["runs"]["max_concurrent_runs"]
    assert helm_limits["pools"]["defaultLimit"] == single_machine["pools"]["default_limit"]


def test_workspace_location_name(dagster_tool):
    (location,) = load_yaml(DEPLOY / "workspace.yaml")["load_from"]
    assert location["grpc_server"]["location_name"] == dagster_tool["code_location_name"]


# ---------------------------------------------------------------------------------------------
# Helm values

# A value that the chart passes on unchecked here: a Kubernetes object (volumes, resources,
# security contexts, env maps) or free-form config.
ANY = object()

# The chart keys this project may set, each with its children. Checked against the pydantic
# models that generate the chart's values.schema.json, under helm/dagster/schema/schema/charts/
# in github.com/dagster-io/dagster: values.py, concurrency.py, run_launcher.py and telemetry.py at
# commit 0f2d9d8ee1755dff289e167e49167d87f4977a9f; webserver.py, daemon.py, postgresql.py and
# dagster_user_deployments/subschema/user_deployments.py at commit
# 007010702fbdd4bc385d3a593dc6c1fb6000084e; global_.py at 53ff29f32a20b39b6db5b1437cd7e377c977a486.
# NOTE: no tagged 1.13.x copy of the chart could be fetched, so these are the newest stored
# versions of each model, not files read at the release tag.
IMAGE = {"repository": ANY, "tag": ANY, "pullPolicy": ANY}
NAMED_SOURCES = [{"name": ANY, "optional": ANY}]
HELM_SCHEMA: dict[str, Any] = {
    "global": {
        "postgresqlSecretName": ANY,
        "dagsterHome": ANY,
        "serviceAccountName": ANY,
        "celeryConfigSecretName": ANY,
        "dagsterInstanceConfigMap": ANY,
    },
    "generatePostgresqlPasswordSecret": ANY,
    "postgresql": {
        "postgresqlScheme": ANY,
        "image": IMAGE,
        "enabled": ANY,
        "postgresqlHost": ANY,
        "postgresqlUsername": ANY,
        "postgresqlPassword": ANY,
        "postgresqlDatabase": ANY,
        "postgresqlParams": ANY,
        "service": {"port": ANY},
    },
    "dagster-user-deployments": {
        "enabled": ANY,
        "enableSubchart": ANY,
        "imagePullSecrets": ANY,
        "deployments": [
            {
                "name": ANY,
                "image": IMAGE,
                "port": ANY,
                "dagsterApiGrpcArgs": ANY,
                "codeServerArgs": ANY,
                "includeConfigInLaunchedRuns": {"enabled": ANY},
                "env": ANY,
                "envConfigMaps": NAMED_SOURCES,
                "envSecrets": NAMED_SOURCES,
                "annotations": ANY,
                "nodeSelector": ANY,
                "affinity": ANY,
                "tolerations": ANY,
                "podSecurityContext": ANY,
                "securityContext": ANY,
                "resources": ANY,
                "livenessProbe": ANY,
                "readinessProbe": ANY,
                "startupProbe": ANY,
                "labels": ANY,
                "volumeMounts": ANY,
                "volumes": ANY,
                "schedulerName": ANY,
            }
        ],
    },
    "runLauncher": {
        "type": ANY,
        "config": {
            "k8sRunLauncher": {
                "image": IMAGE,
                "imagePullPolicy": ANY,
                "jobNamespace": ANY,
                "loadInclusterConfig": ANY,
                "kubeconfigFile": ANY,
                "envConfigMaps": NAMED_SOURCES,
                "envSecrets": NAMED_SOURCES,
                "envVars": ANY,
                "volumeMounts": ANY,
                "volumes": ANY,
                "labels": ANY,
                "failPodOnRunFailure": ANY,
                "resources": ANY,
                "schedulerName": ANY,
                "securityContext": ANY,
                "runK8sConfig": {
                    "containerConfig": ANY,
                    "podSpecConfig": ANY,
                    "podTemplateSpecMetadata": ANY,
                    "jobSpecConfig": ANY,
                    "jobMetadata": ANY,
                },
            },
        },
    },
    "concurrency": {
        "enabled": ANY,
        "pools": {"defaultLimit": ANY, "granularity": ANY, "opGranularityRunBuffer": ANY},
        "runs": {"maxConcurrentRuns": ANY, "tagConcurrencyLimits": ANY},
    },
    "dagsterDaemon": {
        "enabled": ANY,
        "image": IMAGE,
        "runCoordinator": {
            "enabled": ANY,
            "type": ANY,
            "config": {"queuedRunCoordinator": ANY, "customRunCoordinator": ANY},
        },
        "heartbeatTolerance": ANY,
        "env": ANY,
        "envConfigMaps": NAMED_SOURCES,
        "envSecrets": NAMED_SOURCES,
        "resources": ANY,
        "runMonitoring": ANY,
        "runRetries": ANY,
    },
    "telemetry": {"enabled": ANY},
}


def unknown_keys(values: Any, schema: Any, path: str = "") -> list[str]:
    """Return the dotted path of every key in `values` that `schema` does not list."""
    if schema is ANY:
        return []
    if isinstance(schema, list):
        assert isinstance(values, list), f"{path} is {values!r}, expected a list"
        return [
            unknown
            for index, item in enumerate(values)
            for unknown in unknown_keys(item, schema[0], f"{path}[{index}]")
        ]
    assert isinstance(values, dict), f"{path} is {values!r}, expected a mapping"
    found = []
    for key, value in values.items():
        child = f"{path}.{key}" if path else key
        if key in schema:
            found += unknown_keys(value, schema[key], child)
        else:
            found.append(child)
    return found


def test_helm_keys_in_chart_schema(helm_values):
    assert unknown_keys(helm_values, HELM_SCHEMA) == []


def test_helm_schema_check_rejects_typo():
    values = {"runLauncher": {"config": {"k8sRunLauncher": {"envSecret": []}}}}
    assert unknown_keys(values, HELM_SCHEMA) == ["runLauncher.config.k8sRunLauncher.envSecret"]


def test_helm_run_launcher(helm_values):
    launcher = helm_values["runLauncher"]
    config = launcher["config"]["k8sRunLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert config["envSecrets"] == [{"name": "vscope-ovh"}]
    assert config["volumeMounts"] == [{"name": "vscope-data", "mountPath": "/data"}]
    assert config["volumes"] == [
        {"name": "vscope-data", "persistentVolumeClaim": {"claimName": "vscope-data"}}
    ]


def test_helm_run_pods_match_image(helm_values, dockerfile):
    config = helm_values["runLauncher"]["config"]["k8sRunLauncher"]
    (uid,) = [line for line in instructions(dockerfile, "ARG") if line.startswith("APP_UID=")]
    fs_group = int(uid.removeprefix("APP_UID="))
    assert config["runK8sConfig"]["podSpecConfig"] == {"security_context": {"fs_group": fs_group}}


def test_helm_user_deployment(helm_values, dagster_tool, dockerfile):
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    cmd = image_cmd(dockerfile)
    assert helm_values["dagster-user-deployments"]["enabled"] is True
    assert deployment["port"] == 4000
    assert deployment["codeServerArgs"] == ["--module-name", dagster_tool["module_name"]]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert deployment["env"]["VSCOPE_DATA_DIR"] == "/data"
    # The chart adds host and port itself; the module is the one the image's command serves.
    assert cmd[cmd.index("--module-name") + 1] == dagster_tool["module_name"]


def test_helm_code_server_args_parse(helm_values):
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    # The chart runs `dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>`.
    argv = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(deployment["port"])]
    context = parse_dagster_command(argv + deployment["codeServerArgs"])
    assert context.params["module_name"] == "vscope_pipeline.definitions"


def test_helm_dagster_home_matches_image(helm_values, dockerfile):
    assert f"DAGSTER_HOME={helm_values['global']['dagsterHome']}" in dockerfile


def test_helm_postgres_password_from_secret(helm_values):
    assert helm_values["generatePostgresqlPasswordSecret"] is False
    assert helm_values["global"]["postgresqlSecretName"] == "dagster-postgresql"
    assert "postgresqlPassword" not in helm_values["postgresql"]


def test_helm_no_secret_literal(helm_values):
    # Secrets reach the pods only through the Kubernetes Secrets that envSecrets and
    # global.postgresqlSecretName name.
    for text in walk_strings(helm_values):
        assert text not in SECRET_NAMES, f"the Helm values set {text}"
    keys = sorted(
        key for key in walk_keys(helm_values) if re.search("password|secret|token", key, re.I)
    )
    assert keys == ["envSecrets", "generatePostgresqlPasswordSecret", "postgresqlSecretName"]


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_base_images(dockerfile):
    assert instructions(dockerfile, "FROM") == ["python:3.11-slim AS build", "python:3.11-slim"]


def test_dockerfile_runs_as_non_root(dockerfile):
    assert instructions(dockerfile, "USER") == ["${APP_UID}:${APP_UID}"]
    assert "ARG APP_UID=10001" in dockerfile


def test_dockerfile_installs_locked_deps(dockerfile):
    runs = instructions(dockerfile, "RUN")
    assert "uv sync --frozen --no-dev --no-install-project" in runs
    assert "uv sync --frozen --no-dev --no-editable" in runs


def test_dockerfile_uv_version_matches_makefile(dockerfile):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE).group(1)
    assert f"ARG UV_VERSION={version}" in dockerfile


def test_dockerfile_copy_sources_exist(dockerfile):
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    for arguments in instructions(dockerfile, "COPY"):
        if arguments.startswith("--from="):
            continue
        *sources, _destination = shlex.split(arguments)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is missing"
            # The ignore file excludes everything, then lists what the build may read.
            assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignore}, source


def test_dockerfile_cmd_module_importable(dockerfile, dagster_tool):
    cmd = image_cmd(dockerfile)
    module = cmd[cmd.index("--module-name") + 1]
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert module == dagster_tool["module_name"]
    assert importlib.util.find_spec(module) is not None
    assert cmd[cmd.index("--location-name") + 1] == dagster_tool["code_location_name"]
    assert instructions(dockerfile, "EXPOSE") == ["4000"]


# ---------------------------------------------------------------------------------------------
# The code location with the deployment's settings


def test_settings_load_with_compose_env(services, tmp_path):
    environment = dict(services["code"]["environment"])
    example = read_env_file(DEPLOY / "pipeline.env.example")
    environ = {**example, **FAKE_OVH_KEYS, **environment, "VSCOPE_DATA_DIR": str(tmp_path)}

    settings = load_settings(environ)

    assert environment["VSCOPE_DATA_DIR"] == "/data"
    assert settings.data_dir == tmp_path
    assert settings.ovh.endpoint == "ovh-eu"
    assert settings.ovh.application_key == "test-application-key"


def test_settings_reject_unfilled_example(tmp_path):
    example = read_env_file(DEPLOY / "pipeline.env.example")

    with pytest.raises(SettingsError) as raised:
        load_settings({**example, "VSCOPE_DATA_DIR": str(tmp_path)})

    assert raised.value.problems[0].startswith(
        "OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY are missing: "
    )


_LOAD_DEFINITIONS = """
import json
import vscope_pipeline.definitions as location
job = location.defs.resolve_job_def("vscope_ingest")
print(json.dumps({
    "start": job.partitions_def.start.date().isoformat(),
    "schedules": sorted(s.name for s in location.defs.schedules),
}))
"""


def test_code_location_loads_with_helm_env(helm_values, tmp_path):
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    environ = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **deployment["env"],
        "VSCOPE_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(tmp_path),
    }
    # A fresh interpreter, because the definitions read their settings once, on import.
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _LOAD_DEFINITIONS],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {
        "start": deployment["env"]["VSCOPE_START_DATE"],
        "schedules": ["vscope_daily_ingest"],
    }
