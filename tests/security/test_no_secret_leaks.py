"""Known secret strings never reach any output of a real `vscope-pipeline ingest`.

Each case runs the command as a subprocess, with a persistent DAGSTER_HOME (SQLite storage)
and a data folder of its own, against the simulator on 127.0.0.1. The tests then search for
every secret that the case gave the command, raw and in its base64, URL-encoded and
JSON-escaped forms. They search stdout and stderr, the bytes of every file under both folders
(SQLite storage and compute logs included), the string values of the Parquet files and of the
DuckDB tables, and the runs, run config, tags, event log and metadata read back through the
Dagster instance.

Besides a successful day, the cases cover runs that fail with a secret at hand: a wrong
application secret (APIv6 rejects the signature), a revoked metrics token (OpenTSDB answers
401), an unreachable OpenTSDB endpoint given with VSCOPE_OPENTSDB_TOKEN, and an OAuth2 client
secret. The simulator has no OAuth2 token endpoint and python-ovh takes OAuth2 tokens from
OVHcloud only, so the OAuth2 case covers the command that rejects the settings before any run,
not a signed request.

The cases run concurrently, so the file takes about as long as its slowest command.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vscope_pipeline.ingest import last_complete_day
from vscope_pipeline.simulator.credentials import SimulatorCredentials
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND = [str(Path(sys.executable).parent / "vscope-pipeline")]
# The same command with shorter waits between OpenTSDB retries, for the unreachable endpoint:
# with the default 1, 2, 4 and 8 s waits, less up to 50 % jitter, each of the 3 metric steps
# would wait about 11 s on average.
# The attempts and the code that reports the failure stay the same.
FAST_RETRY_COMMAND = [
    sys.executable,
    "-c",
    "import functools, sys\n"
    "import vscope_pipeline.opentsdb.client as client\n"
    "from vscope_pipeline.cli import main\n"
    "from vscope_pipeline.retry import RetryPolicy\n"
    "client.RetryPolicy = functools.partial(RetryPolicy, base_delay=0.05, max_delay=0.2)\n"
    "sys.exit(main(sys.argv[1:]))\n",
]
# Seconds one command may take. A successful day took about 20 s on a busy 2-core machine.
COMMAND_TIMEOUT = 240

# The '/', '+' and '=' make the URL-encoded forms differ from the raw ones.
CREDENTIALS = SimulatorCredentials(
    application_key="AKleakCanary0001",
    application_secret="AppSecret/Canary+Kq7=LeakTest0001",
    consumer_key="ConsumerKey/Canary+Zx9=LeakTest001",
    metrics_token="MetricsToken/Canary+Wv3=LeakTest01",
)
WRONG_APPLICATION_SECRET = "WrongAppSecret/Canary+Hb5=Leak0001"
ENVIRONMENT_TOKEN = "EnvMetricsToken/Canary+Rt8=Leak001"
OAUTH2_CLIENT_SECRET = "OAuth2ClientSecret/Canary+Np4=Leak1"
OAUTH2_CLIENT_ID = "oauth2-leak-canary-client"

# The simulator's default credentials, which `make demo` uses. The documentation must not
# show them either, so that no one copies them as an example of a key.
DEMO = SimulatorCredentials()


@dataclass(frozen=True)
class CommandRun:
    """One finished `vscope-pipeline ingest` and the secrets it was given."""

    name: str
    secrets: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    dagster_home: Path
    data_dir: Path


@dataclass
class Case:
    """One command to run: its extra environment, the secrets it gets and its process."""

    name: str
    environment: dict[str, str]
    secrets: tuple[str, ...]
    command: list[str] = field(default_factory=lambda: COMMAND)
    simulator: str = "working"
    process: subprocess.Popen[str] | None = None
    folders: tuple[Path, Path] = field(default=(Path(), Path()))


def secret_forms(secret: str) -> dict[str, bytes]:
    """Return the encodings of `secret` to search for, by name.

    A base64 encoding of data that contains the secret depends on the secret's offset modulo
    3, so each offset gets its own form. The 4 characters at either end also encode the bytes
    around the secret, so they are left out.
    """
    raw = secret.encode()
    forms = {
        "raw": raw,
        "url-encoded": quote(secret, safe="").encode(),
        "form-encoded": quote_plus(secret).encode(),
        # Some JSON encoders escape '/' as '\/'. The other characters need no escape.
        "json-escaped": json.dumps(secret)[1:-1].replace("/", "\\/").encode(),
    }
    for offset in range(3):
        padded = b"\0" * offset + raw
        start = 4 if offset else 0
        forms[f"base64 at offset {offset}"] = base64.b64encode(padded)[start:-4]
        forms[f"base64url at offset {offset}"] = base64.urlsafe_b64encode(padded)[start:-4]
    return forms


def find_secrets(content: bytes, secrets: tuple[str, ...]) -> list[str]:
    """Return `secret (form)` for every form of every secret found in `content`."""
    return [
        f"{secret} ({name})"
        for secret in secrets
        for name, form in secret_forms(secret).items()
        if form in content
    ]


def _environment(simulator: RunningSimulator, data_dir: Path, home: Path) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OVH_", "VSCOPE_", "DAGSTER_"))
    }
    environment.update(simulator.environment())
    environment["VSCOPE_DATA_DIR"] = str(data_dir)
    environment["DAGSTER_HOME"] = str(home)
    return environment


def _cases(working: RunningSimulator, revoked: RunningSimulator, closed_port: int) -> list[Case]:
    keys = (CREDENTIALS.application_secret, CREDENTIALS.consumer_key)
    token = (CREDENTIALS.metrics_token,)
    return [
        Case("success", {}, keys + token),
        Case(
            "wrong_application_secret",
            {"OVH_APPLICATION_SECRET": WRONG_APPLICATION_SECRET},
            (WRONG_APPLICATION_SECRET, *keys, *token),
        ),
        Case("revoked_metrics_token", {}, keys + token, simulator="revoked"),
        Case(
            "unreachable_opentsdb",
            {
                "VSCOPE_OPENTSDB_URL": f"http://127.0.0.1:{closed_port}",
                "VSCOPE_OPENTSDB_TOKEN": ENVIRONMENT_TOKEN,
            },
            (ENVIRONMENT_TOKEN, *keys),
            command=FAST_RETRY_COMMAND,
        ),
        Case(
            "oauth2_client_secret",
            {
                "OVH_APPLICATION_KEY": "",
                "OVH_APPLICATION_SECRET": "",
                "OVH_CONSUMER_KEY": "",
                "OVH_CLIENT_ID": OAUTH2_CLIENT_ID,
                "OVH_CLIENT_SECRET": OAUTH2_CLIENT_SECRET,
            },
            (OAUTH2_CLIENT_SECRET, *keys, *token),
        ),
    ]


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but not listening, so connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, closed_port: int) -> dict[str, CommandRun]:
    """Run every case's command at once and return the finished runs by case name."""
    day = last_complete_day()
    with (
        running_simulator(credentials=CREDENTIALS, vm_count=3, step_seconds=300) as working,
        running_simulator(credentials=CREDENTIALS, vm_count=3, step_seconds=300) as revoked,
    ):
        revoked.opentsdb_server.server.revoke(CREDENTIALS.metrics_token)
        cases = _cases(working, revoked, closed_port)
        for case in cases:
            simulator = revoked if case.simulator == "revoked" else working
            root = tmp_path_factory.mktemp(case.name)
            home, data_dir = root / "dagster_home", root / "data"
            environment = _environment(simulator, data_dir, home)
            environment.update(case.environment)
            case.folders = (home, data_dir)
            case.process = subprocess.Popen(
                [*case.command, "ingest", "--from", str(day), "--to", str(day)],
                cwd=root,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finished = {}
        for case in cases:
            assert case.process is not None
            try:
                stdout, stderr = case.process.communicate(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                case.process.kill()
                stdout, stderr = case.process.communicate()
            home, data_dir = case.folders
            finished[case.name] = CommandRun(
                case.name, case.secrets, case.process.returncode, stdout, stderr, home, data_dir
            )
    return finished


CASES = (
    "success",
    "wrong_application_secret",
    "revoked_metrics_token",
    "unreachable_opentsdb",
    "oauth2_client_secret",
)
# Text in stderr that shows that each failing case failed for the intended reason.
FAILURE_SIGNS = {
    "wrong_application_secret": "Invalid signature",
    "revoked_metrics_token": "OpenTSDBAuthError",
    "unreachable_opentsdb": "Connection refused",
    "oauth2_client_secret": "OAuth2 (OVH_CLIENT_ID, OVH_CLIENT_SECRET) cannot be used",
}
# Cases whose settings are invalid, so the command exits 2 before it starts a run.
SETTINGS_FAILURES = ("oauth2_client_secret",)


def _files(run: CommandRun) -> list[Path]:
    return sorted(
        path
        for folder in (run.dagster_home, run.data_dir)
        for path in folder.rglob("*")
        if path.is_file()
    )


def _parquet_text(path: Path) -> bytes:
    """Return the key-value metadata and every non-numeric value of a Parquet file as text."""
    parquet = pq.ParquetFile(path)
    parts = [repr(parquet.metadata.metadata), repr(parquet.schema_arrow)]
    table = parquet.read()
    for column in table.columns:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            parts.append(repr(column.unique().to_pylist()))
        elif pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
            parts.append(repr(column.to_pylist()))
    return "\n".join(parts).encode()


def _duckdb_text(path: Path) -> bytes:
    """Return every table's rows and every view's SQL of a DuckDB file as text."""
    parts = []
    with duckdb.connect(str(path), read_only=True) as con:
        parts += [sql for (sql,) in con.execute("SELECT sql FROM duckdb_views()").fetchall()]
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        for (table,) in tables:
            parts.append(repr(con.execute(f'SELECT * FROM "{table}"').fetchall()))
    return "\n".join(parts).encode()


@pytest.mark.parametrize("name", CASES)
def test_command_outcome(runs: dict[str, CommandRun], name: str) -> None:
    run = runs[name]
    if name == "success":
        assert run.returncode == 0, run.stderr[-3000:]
        run_line, checks_line = run.stdout.rstrip().splitlines()[-2:]
        assert run_line.endswith("succeeded")
        assert checks_line.startswith("  checks: ")
        assert (run.data_dir / "vscope.duckdb").is_file()
    elif name in SETTINGS_FAILURES:
        assert run.returncode == 2, run.stderr[-3000:]
        assert run.stdout == ""
        assert FAILURE_SIGNS[name] in run.stderr
    else:
        assert run.returncode == 1, run.stderr[-3000:]
        assert "FAILED" in run.stdout
        assert FAILURE_SIGNS[name] in run.stderr


@pytest.mark.parametrize("name", CASES)
def test_no_secret_in_output(runs: dict[str, CommandRun], name: str) -> None:
    run = runs[name]
    assert find_secrets(run.stdout.encode(), run.secrets) == []
    assert find_secrets(run.stderr.encode(), run.secrets) == []


@pytest.mark.parametrize("name", CASES)
def test_no_secret_in_files(runs: dict[str, CommandRun], name: str) -> None:
    run = runs[name]
    files = _files(run)
    if name in SETTINGS_FAILURES:
        # The settings stop the command before it creates the instance or the lake.
        assert files == []
        return
    assert any(path.name.endswith(".db") for path in files), "no SQLite storage was written"
    assert any(path.parent.name == "compute_logs" for path in files), "no compute log was written"
    for path in files:
        assert find_secrets(path.read_bytes(), run.secrets) == [], path
        if path.suffix == ".parquet":
            assert find_secrets(_parquet_text(path), run.secrets) == [], path
        if path.suffix == ".duckdb":
            assert find_secrets(_duckdb_text(path), run.secrets) == [], path


@pytest.mark.parametrize("name", CASES)
def test_no_secret_in_dagster_instance(
    runs: dict[str, CommandRun], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = runs[name]
    if name in SETTINGS_FAILURES:
        assert not run.dagster_home.exists()
        return
    # dagster.yaml places the SQLite storage under $DAGSTER_HOME.
    monkeypatch.setenv("DAGSTER_HOME", str(run.dagster_home))
    with dg.DagsterInstance.get() as instance:
        dagster_runs = instance.get_runs()
        assert len(dagster_runs) == 1
        for dagster_run in dagster_runs:
            config = dg.serialize_value(dagster_run)
            assert find_secrets(config.encode(), run.secrets) == []
            assert find_secrets(repr(dagster_run.run_config).encode(), run.secrets) == []
            assert find_secrets(repr(dagster_run.tags).encode(), run.secrets) == []
            records = instance.all_logs(dagster_run.run_id)
            assert records
            for record in records:
                text = dg.serialize_value(record)
                assert find_secrets(text.encode(), run.secrets) == [], record.message


def test_secret_forms_find_encoded_secret() -> None:
    token = CREDENTIALS.metrics_token
    basic_auth = b"Authorization: Basic " + base64.b64encode(f"read:{token}".encode())
    query = f"GET /api/query?token={quote(token, safe='')} HTTP/1.1".encode()

    # "read:" is 5 bytes long, so the token starts at offset 2 of a 3-byte base64 group.
    # Its encoding has no '+' or '/', so the base64url form is the same text.
    assert find_secrets(basic_auth, (token,)) == [
        f"{token} (base64 at offset 2)",
        f"{token} (base64url at offset 2)",
    ]
    assert find_secrets(query, (token,)) == [f"{token} (url-encoded)", f"{token} (form-encoded)"]
    assert find_secrets(b"nothing here", (token,)) == []


DOCUMENTS = (
    REPOSITORY / "README.md",
    REPOSITORY / "README.fr.md",
    *sorted((REPOSITORY / "docs").glob("*.md")),
)
# 32 or more hex digits: the length of an MD5 or longer digest, or of a random hex key.
HEX_KEY = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{32,}(?![0-9A-Za-z])")
# 24 or more base64 or base64url characters: a token once it mixes upper case, lower case and
# digits. Words, paths and names with dashes rarely mix all three.
BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{24,}(?![A-Za-z0-9+/_=-])")
SECRET_ASSIGNMENT = re.compile(
    r"\b(OVH_APPLICATION_SECRET|OVH_CONSUMER_KEY|OVH_CLIENT_SECRET|VSCOPE_OPENTSDB_TOKEN|"
    r"VSCOPE_S3_SECRET_ACCESS_KEY|application_secret|consumer_key|client_secret)"
    r"\s*[=:]\s*(<[^>]*>|[^\s|`]+)"
)
# A documented value is a placeholder (`<secret>`, `$VAR`, `...`), never a key.
PLACEHOLDER = re.compile(r"""^["']?(<[^>]*>|\$\{?\w+\}?|\.\.\.|…|x+)["']?$""")


# Letters and digits in a row, without a separator, from which a run can be a key: OVH
# application keys have 16.
MIN_KEY_STRETCH = 12


def _looks_like_token(text: str) -> bool:
    # An API path such as /dedicatedCloud/pcc-1/datacenter/1/vm/42 has short segments, which
    # a random key of that length does not.
    segments = text.strip("/").split("/")
    if len(segments) >= 3 and max(len(segment) for segment in segments) <= 20:
        return False
    # OVH keys and tokens are long runs of letters and digits. A file name such as
    # vscope-report-D1-D2 mixes cases and digits only across short words.
    longest = max(re.findall(r"[A-Za-z0-9]+", text), key=len, default="")
    return (
        len(longest) >= MIN_KEY_STRETCH
        and any(char.isupper() for char in longest)
        and any(char.islower() for char in longest)
        and any(char.isdigit() for char in longest)
    )


def test_documents_exist() -> None:
    assert [path.name for path in DOCUMENTS[:2]] == ["README.md", "README.fr.md"]
    assert all(path.is_file() for path in DOCUMENTS)
    assert len(DOCUMENTS) > 2


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_document_shows_no_key(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    simulator_secrets = (DEMO.application_secret, DEMO.consumer_key, DEMO.metrics_token)
    known = CREDENTIALS.application_secret, CREDENTIALS.consumer_key, CREDENTIALS.metrics_token

    assert find_secrets(text.encode(), simulator_secrets + known) == []
    assert HEX_KEY.findall(text) == []
    assert [run for run in BASE64_RUN.findall(text) if _looks_like_token(run)] == []
    values = [value for _, value in SECRET_ASSIGNMENT.findall(text)]
    assert [value for value in values if not PLACEHOLDER.match(value)] == []


def test_key_patterns_match_examples() -> None:
    text = (
        "export OVH_APPLICATION_SECRET=Zq7wK2mP9xL4vB8nR3tY6uH1jG5fD0sA\n"
        "digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
        "token: abcDEF123ghiJKL456mnoPQR789\n"
        "OVH_CONSUMER_KEY=<your consumer key> VSCOPE_OPENTSDB_TOKEN=$TOKEN\n"
        "path tests/warehouse/test_bi_connections.py and pcc-203-0-113-10_datacenter1\n"
        "GET /dedicatedCloud/pcc-1/datacenter/1/vm/42 failed\n"
        "report <data dir>/reports/vscope-report-D1-D2.html\n"
    )

    assert HEX_KEY.findall(text) == [
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    ]
    # '=' is a base64 character, so the run starts at the variable name.
    assert [run for run in BASE64_RUN.findall(text) if _looks_like_token(run)] == [
        "OVH_APPLICATION_SECRET=Zq7wK2mP9xL4vB8nR3tY6uH1jG5fD0sA",
        "abcDEF123ghiJKL456mnoPQR789",
    ]
    values = [value for _, value in SECRET_ASSIGNMENT.findall(text)]
    assert values == ["Zq7wK2mP9xL4vB8nR3tY6uH1jG5fD0sA", "<your consumer key>", "$TOKEN"]
    assert [value for value in values if not PLACEHOLDER.match(value)] == [
        "Zq7wK2mP9xL4vB8nR3tY6uH1jG5fD0sA"
    ]
