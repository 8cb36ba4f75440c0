"""Checks of the systemd units in deploy/systemd that start no service.

`systemd-analyze verify` checks a copy of each unit whose absolute paths point into a temporary
folder, because it rejects an ExecStart binary that does not exist. It is skipped where
/usr/bin/systemd-analyze is missing. What these tests cannot check: that the units start under
systemd, that the hardening leaves Dagster everything it writes, and that the stop timeout
suffices for a real run.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_deploy_files import DEPLOY, ROOT, SECRET_NAMES, parse_dagster_command, read_env_file

UNITS_DIR = DEPLOY / "systemd"
DAEMON = "vscope-dagster-daemon.service"
WEBSERVER = "vscope-dagster-webserver.service"
SYSTEMD_ANALYZE = Path("/usr/bin/systemd-analyze")

# The paths that the install recipe in docs/deployment.md creates.
CHECKOUT = "/opt/vscope-pipeline"
ENV_FILE = "/etc/vscope-pipeline/pipeline.env"
STATE_DIR = "/srv/vscope"

# Secrets of a lake in a bucket, on top of the OVH, OpenTSDB and PostgreSQL ones.
UNIT_SECRET_NAMES = (*SECRET_NAMES, "VSCOPE_S3_ACCESS_KEY_ID", "VSCOPE_S3_SECRET_ACCESS_KEY")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into section -> key -> values, keeping every value of a repeated key.

    Comments start with # or ;, and the units use no line continuations or quoting.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {number} is outside a section: {raw!r}"
        assert "=" in line, f"line {number} is not key=value: {raw!r}"
        assert not line.endswith("\\"), f"line {number} continues on the next line"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def load_unit(name: str) -> dict[str, dict[str, list[str]]]:
    return parse_unit((UNITS_DIR / name).read_text(encoding="utf-8"))


def single(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key} is set {len(values)} times: {values!r}"
    return values[0]


def environment(unit: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """Return the variables of every Environment= line (no quoting is used in these units)."""
    variables = {}
    for line in unit["Service"].get("Environment", []):
        for assignment in line.split():
            name, _, value = assignment.partition("=")
            variables[name] = value
    return variables


def exec_start(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    return shlex.split(single(unit, "Service", "ExecStart"))


def covered(path: str, writable: list[str]) -> bool:
    return any(Path(path).is_relative_to(folder) for folder in writable)


@pytest.fixture(scope="module")
def units() -> dict[str, dict[str, dict[str, list[str]]]]:
    return {name: load_unit(name) for name in (DAEMON, WEBSERVER)}


def test_unit_files_listed():
    assert sorted(path.name for path in UNITS_DIR.iterdir()) == [DAEMON, WEBSERVER]


def test_parse_unit_keeps_repeated_keys():
    unit = parse_unit("[Service]\n# comment\nEnvironment=A=1\nEnvironment=B=2 C=3\n")
    assert unit["Service"]["Environment"] == ["A=1", "B=2 C=3"]
    assert environment(unit) == {"A": "1", "B": "2", "C": "3"}


@pytest.mark.parametrize(
    ("name", "program", "arguments"),
    [
        (DAEMON, "dagster-daemon", ["run", "-w", "workspace.yaml"]),
        (WEBSERVER, "dagster-webserver", ["-h", "127.0.0.1", "-p", "3000", "-w", "workspace.yaml"]),
    ],
)
def test_unit_exec_start(units, name, program, arguments):
    argv = exec_start(units[name])
    assert argv[0] == f"{CHECKOUT}/.venv/bin/{program}"
    assert argv[1:] == arguments
    # `uv sync` installs the program under that name in the checkout's .venv/bin.
    assert (ROOT / ".venv" / "bin" / program).is_file()


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_command_parses(units, name):
    argv = exec_start(units[name])
    context = parse_dagster_command([Path(argv[0]).name, *argv[1:]])
    assert context.params["workspace"] == ("workspace.yaml",)


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_workspace_in_checkout(units, name):
    argv = exec_start(units[name])
    workspace = argv[argv.index("-w") + 1]
    assert single(units[name], "Service", "WorkingDirectory") == CHECKOUT
    # The unit's working directory is the checkout, so the repository's file is the one read.
    (location,) = yaml.safe_load((ROOT / workspace).read_text(encoding="utf-8"))["load_from"]
    assert location["python_module"]["module_name"] == "vscope_pipeline.definitions"


def test_webserver_binds_loopback(units):
    argv = exec_start(units[WEBSERVER])
    context = parse_dagster_command([Path(argv[0]).name, *argv[1:]])
    assert context.params["host"] == "127.0.0.1"
    assert context.params["port"] == 3000


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_user_and_restart(units, name):
    unit = units[name]
    assert single(unit, "Service", "User") == "vscope"
    assert single(unit, "Service", "Group") == "vscope"
    assert single(unit, "Service", "Restart") == "on-failure"
    assert single(unit, "Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in single(unit, "Unit", "Wants").split()
    assert "network-online.target" in single(unit, "Unit", "After").split()


def test_webserver_starts_after_daemon(units):
    assert DAEMON in single(units[WEBSERVER], "Unit", "After").split()
    # Ordering only: the web UI still starts when the daemon fails.
    assert "Requires" not in units[WEBSERVER]["Unit"]
    assert "BindsTo" not in units[WEBSERVER]["Unit"]


def test_daemon_stop_timeout_longer(units):
    # Runs execute in the daemon's unit, so it waits longer for them after SIGTERM.
    assert single(units[DAEMON], "Service", "TimeoutStopSec") == "5min"
    assert single(units[WEBSERVER], "Service", "TimeoutStopSec") == "30s"
    assert "KillMode" not in units[DAEMON]["Service"]


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_secrets_only_in_env_file(units, name):
    unit = units[name]
    assert single(unit, "Service", "EnvironmentFile") == ENV_FILE
    variables = environment(unit)
    for secret in UNIT_SECRET_NAMES:
        assert secret not in variables, f"{name} sets {secret} in the unit"
    text = (UNITS_DIR / name).read_text(encoding="utf-8")
    for secret in UNIT_SECRET_NAMES:
        assert f"{secret}=" not in text, f"{name} assigns {secret}"


def test_env_file_example_reads_as_unit_env():
    # The example's lines are KEY=value with no quoting, which EnvironmentFile= reads as is.
    example = read_env_file(DEPLOY / "pipeline.env.example")
    assert example["OVH_ENDPOINT"] == "ovh-eu"
    assert all(name.isidentifier() for name in example)


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_hardening(units, name):
    service = units[name]["Service"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["ProtectHome"] == ["yes"]
    assert service["PrivateTmp"] == ["yes"]


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_umask_private(units, name):
    # Dagster's run history and logs name VMs and hosts, and systemd's default umask is 022.
    assert single(units[name], "Service", "UMask") == "0077"


@pytest.mark.parametrize("name", [DAEMON, WEBSERVER])
def test_unit_writable_paths(units, name):
    unit = units[name]
    writable = [path for line in unit["Service"]["ReadWritePaths"] for path in line.split()]
    variables = environment(unit)
    for variable in ("DAGSTER_HOME", "HOME", "VSCOPE_DATA_DIR"):
        if variable in variables:
            assert covered(variables[variable], writable), f"{name}: {variable} is read-only"
    # ProtectHome=yes hides /home, /root and /run/user, so HOME must be elsewhere.
    assert not covered(variables["HOME"], ["/home", "/root", "/run/user"])
    assert all(covered(path, [STATE_DIR]) for path in writable), writable


def test_units_share_instance(units):
    daemon = environment(units[DAEMON])
    webserver = environment(units[WEBSERVER])
    assert daemon["DAGSTER_HOME"] == webserver["DAGSTER_HOME"] == f"{STATE_DIR}/dagster_home"
    assert daemon["VSCOPE_DATA_DIR"] == f"{STATE_DIR}/data"
    # No run executes in the web UI's unit, so it needs no data folder.
    assert "VSCOPE_DATA_DIR" not in webserver


def relocated_unit(text: str, base: Path) -> str:
    """Return the unit text with each absolute path it names moved under `base`."""
    for prefix in (CHECKOUT, STATE_DIR, "/etc/vscope-pipeline"):
        text = text.replace(prefix, str(base / prefix.strip("/")))
    return text


def make_relocated_tree(base: Path) -> None:
    """Create under `base` the files and folders that the relocated units name."""
    bin_dir = base / CHECKOUT.strip("/") / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("dagster-daemon", "dagster-webserver"):
        (bin_dir / program).write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        (bin_dir / program).chmod(0o755)
    for folder in ("dagster_home", "data", "home"):
        (base / STATE_DIR.strip("/") / folder).mkdir(parents=True)
    env_file = base / ENV_FILE.strip("/")
    env_file.parent.mkdir(parents=True)
    shutil.copyfile(DEPLOY / "pipeline.env.example", env_file)


def systemd_analyze_verify(folder: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", *(f"./{name}" for name in names)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


needs_systemd_analyze = pytest.mark.skipif(
    not SYSTEMD_ANALYZE.exists(), reason="/usr/bin/systemd-analyze is not installed"
)


@needs_systemd_analyze
def test_units_pass_systemd_analyze(tmp_path):
    make_relocated_tree(tmp_path)
    names = [DAEMON, WEBSERVER]
    for name in names:
        text = (UNITS_DIR / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(relocated_unit(text, tmp_path), encoding="utf-8")

    result = systemd_analyze_verify(tmp_path, names)

    assert result.returncode == 0, result.stderr
    # systemd-analyze (version 252) reports an unknown key as a warning and still exits with 0.
    # Only the lines about these units count: the system's own units may warn on some hosts.
    warnings = [line for line in result.stderr.splitlines() if "vscope-dagster-" in line]
    assert warnings == []


@needs_systemd_analyze
def test_systemd_analyze_catches_typo(tmp_path):
    make_relocated_tree(tmp_path)
    text = relocated_unit((UNITS_DIR / DAEMON).read_text(encoding="utf-8"), tmp_path)
    (tmp_path / DAEMON).write_text(text.replace("ProtectSystem=", "ProtectSytem="))

    result = systemd_analyze_verify(tmp_path, [DAEMON])

    assert "Unknown key" in result.stderr
    assert "ProtectSytem" in result.stderr
