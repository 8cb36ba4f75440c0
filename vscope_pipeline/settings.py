"""Typed settings read from the environment at run time, validated all at once.

Every problem found is collected, so a user fixes the whole configuration in one pass instead of
one variable per failed run. Nothing here sends a request.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import ovh.client
import ovh.config

from vscope_pipeline.catalog import CatalogError, MetricSpec, parse_extra_metric
from vscope_pipeline.lake.location import LakeLocation, S3Connection
from vscope_pipeline.lake.staging import FileModes, file_modes
from vscope_pipeline.ovh.client import EndpointError, resolve_endpoint
from vscope_pipeline.secrets import Secret

DEFAULT_ENDPOINT = "ovh-eu"
DEFAULT_USER_LOGIN = "admin"
DEFAULT_DATA_DIR = "./data"
# vScope keeps about a year of history. The first partition is a fixed date, so the partition
# set, and therefore the Dagster UI, does not shift from one day to the next.
DEFAULT_START_DATE = dt.date(2025, 1, 1)

# UTC hour by which yesterday's metric partitions must exist: the daily run starts at 01:30,
# so 06:00 leaves it and a retry time to finish.
DEFAULT_FRESHNESS_HOUR = 6

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _missing_keys_problem(missing: list[str]) -> str:
    verb, pronoun = ("is", "it") if len(missing) == 1 else ("are", "them")
    return (
        f"{', '.join(missing)} {verb} missing: create keys at https://eu.api.ovh.com/createToken/ "
        f"(or the ca/us equivalent) or set {pronoun} in ovh.conf; a service account uses "
        "OVH_CLIENT_ID and OVH_CLIENT_SECRET instead, and `vscope-pipeline ingest --simulator` "
        "needs none"
    )


class SettingsError(ValueError):
    """One or more settings are missing or invalid; the message lists each with its fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        count = len(problems)
        super().__init__(f"invalid configuration ({count} problem{'s' * (count > 1)}):\n{lines}")


@dataclass(frozen=True)
class OvhCredentials:
    """How to reach and sign requests to OVH APIv6."""

    endpoint: str
    application_key: str | None = None
    application_secret: Secret | None = None
    consumer_key: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None


@dataclass(frozen=True)
class OpenTSDBTuning:
    """Limits on the load the pipeline puts on the OpenTSDB endpoint."""

    max_concurrency: int = 4
    # Requests per second, for all threads of one run together.
    rate_limit: float = 10.0
    # Read timeout of one request, in seconds.
    read_timeout: float = 120.0
    # An OpenTSDB downsample spec such as `5m-avg`; None stores the raw points.
    downsample: str | None = None


@dataclass(frozen=True)
class Settings:
    ovh: OvhCredentials
    service_names: tuple[str, ...] | None
    user_login: str | None
    user_id: int | None
    opentsdb_url: str | None
    opentsdb_token: Secret | None
    data_dir: Path
    extra_metrics: tuple[MetricSpec, ...] = field(default=())
    opentsdb_tuning: OpenTSDBTuning = field(default_factory=OpenTSDBTuning)
    # True lets the data folder's group read new lake and warehouse files (VSCOPE_SHARE_WITH_GROUP).
    share_with_group: bool = False
    # The lake in a bucket (VSCOPE_LAKE_URL and VSCOPE_S3_*), or None for `data_dir`.
    lake_bucket: LakeBucket | None = None
    # Processes that fetch, decode and write the metric-days of a run (VSCOPE_WORKERS).
    workers: int = 1
    # The first daily partition (VSCOPE_START_DATE).
    start_date: dt.date = DEFAULT_START_DATE
    # UTC hour by which yesterday's partitions must exist (VSCOPE_FRESHNESS_HOUR).
    freshness_hour: int = DEFAULT_FRESHNESS_HOUR
    # The Dagster instance storage (VSCOPE_DAGSTER_STORAGE and DAGSTER_PG_*).
    dagster_storage: DagsterStorage = field(default_factory=lambda: DagsterStorage("sqlite"))

    @property
    def lake(self) -> LakeLocation:
        """Return where the lake is: the bucket of VSCOPE_LAKE_URL, or `data_dir`."""
        return lake_location(self.data_dir, self.lake_bucket)

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "vscope.duckdb"

    @property
    def file_modes(self) -> FileModes:
        """Modes of the files and folders that the lake writer and the warehouse build create."""
        return file_modes(self.share_with_group)


def _clean(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _ovh_value(environ: Mapping[str, str], section: str, name: str) -> str | None:
    """Look a python-ovh setting up the way python-ovh does: `OVH_<NAME>`, then ovh.conf."""
    value = _clean(environ, f"OVH_{name.upper()}")
    if value is None and environ is os.environ:
        # ovh.conf files (/etc/ovh.conf, ~/.ovh.conf, ./ovh.conf) only apply to the real
        # process environment, so tests that pass a dict stay independent of the machine.
        value = ovh.config.config.get(section, name) or None
    return value


def validate_endpoint(endpoint: str) -> str | None:
    """Return a problem description, or None when `endpoint` is a known name or a base URL."""
    try:
        resolve_endpoint(endpoint)
    except EndpointError as error:
        return f"OVH_ENDPOINT: {error}"
    return None


def redacted_url(url: str) -> str:
    """Return `url` for a message, without a user:password part or query, which may be secret."""
    parts = urlsplit(url)
    if "@" not in parts.netloc and "@" in url:
        # Not parsed as scheme://user:password@host, so everything up to the last "@" goes.
        return "<hidden>@" + url.rpartition("@")[2]
    netloc = parts.netloc.rpartition("@")[2]
    query = "<hidden>" if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _oauth2_endpoint_problem(endpoint: str) -> str | None:
    """Return a problem description when a service account cannot sign in through `endpoint`.

    python-ovh 1.2.0 fetches OAuth2 tokens from a fixed token URL per endpoint name
    (`ovh.client.OAUTH2_TOKEN_URLS`: ovh-eu, ovh-ca and ovh-us) and raises InvalidConfiguration
    for any other name. A URL on another host, such as the simulator, has no token URL at all.
    """
    try:
        target = resolve_endpoint(endpoint)
    except EndpointError:
        # validate_endpoint has already reported this value.
        return None
    if target.name in ovh.client.OAUTH2_TOKEN_URLS:
        return None
    names = ", ".join(sorted(ovh.client.OAUTH2_TOKEN_URLS))
    return (
        f"OAuth2 (OVH_CLIENT_ID, OVH_CLIENT_SECRET) cannot be used with OVH_ENDPOINT "
        f"{endpoint!r}: python-ovh fetches service account tokens from OVHcloud only, for the "
        f"endpoints {names}. Set OVH_ENDPOINT to one of these, or replace OVH_CLIENT_ID and "
        "OVH_CLIENT_SECRET with application keys (OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, "
        "OVH_CONSUMER_KEY) to use this endpoint"
    )


def _load_ovh(environ: Mapping[str, str], problems: list[str]) -> OvhCredentials:
    endpoint = _ovh_value(environ, "default", "endpoint") or DEFAULT_ENDPOINT
    if (problem := validate_endpoint(endpoint)) is not None:
        problems.append(problem)

    def value(name: str) -> str | None:
        return _ovh_value(environ, endpoint, name)

    application_key = value("application_key")
    application_secret = value("application_secret")
    consumer_key = value("consumer_key")
    client_id = value("client_id")
    client_secret = value("client_secret")

    uses_keys = any((application_key, application_secret, consumer_key))
    uses_oauth2 = any((client_id, client_secret))
    if uses_keys and uses_oauth2:
        problems.append(
            "both API keys (OVH_APPLICATION_KEY...) and a service account (OVH_CLIENT_ID...) "
            "are set: keep only one of the two"
        )
    elif uses_oauth2:
        for name, given in (("OVH_CLIENT_ID", client_id), ("OVH_CLIENT_SECRET", client_secret)):
            if not given:
                problems.append(f"{name} is missing: set it with the service account's value")
        if (problem := _oauth2_endpoint_problem(endpoint)) is not None:
            problems.append(problem)
    else:
        missing = [
            name
            for name, given in (
                ("OVH_APPLICATION_KEY", application_key),
                ("OVH_APPLICATION_SECRET", application_secret),
                ("OVH_CONSUMER_KEY", consumer_key),
            )
            if not given
        ]
        if missing:
            problems.append(_missing_keys_problem(missing))

    def secret(text: str | None) -> Secret | None:
        return Secret(text) if text else None

    return OvhCredentials(
        endpoint=endpoint,
        application_key=application_key,
        application_secret=secret(application_secret),
        consumer_key=secret(consumer_key),
        client_id=client_id,
        client_secret=secret(client_secret),
    )


def _load_service_names(environ: Mapping[str, str], problems: list[str]) -> tuple[str, ...] | None:
    text = _clean(environ, "VSCOPE_SERVICE_NAMES")
    if text is None:
        return None
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    bad = [name for name in names if not _SERVICE_NAME.match(name)]
    if bad or not names:
        problems.append(
            f"VSCOPE_SERVICE_NAMES {text!r} is invalid: expected comma-separated service "
            "names such as pcc-203-0-113-10, or leave it unset for every service"
        )
    return names


def _load_user(environ: Mapping[str, str], problems: list[str]) -> tuple[str | None, int | None]:
    login = _clean(environ, "VSCOPE_USER_LOGIN")
    id_text = _clean(environ, "VSCOPE_USER_ID")
    if login and id_text:
        problems.append("VSCOPE_USER_LOGIN and VSCOPE_USER_ID are both set: keep only one of them")
    if id_text is None:
        return login or DEFAULT_USER_LOGIN, None
    if not id_text.isdigit() or int(id_text) <= 0:
        problems.append(
            f"VSCOPE_USER_ID {id_text!r} is not a positive integer: set it to the userId "
            "shown by GET /dedicatedCloud/{serviceName}/user"
        )
        return None, None
    return None, int(id_text)


def _load_opentsdb(
    environ: Mapping[str, str], problems: list[str]
) -> tuple[str | None, Secret | None]:
    url = _clean(environ, "VSCOPE_OPENTSDB_URL")
    token = _clean(environ, "VSCOPE_OPENTSDB_TOKEN")
    if url and not token:
        problems.append(
            "VSCOPE_OPENTSDB_TOKEN is missing while VSCOPE_OPENTSDB_URL is set: set both, "
            "or neither to ask OVH APIv6 for the vScope token"
        )
    if token and not url:
        problems.append(
            "VSCOPE_OPENTSDB_URL is missing while VSCOPE_OPENTSDB_TOKEN is set: set both, "
            "for example https://opentsdb.gra1-ovh.metrics.ovh.net"
        )
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                f"VSCOPE_OPENTSDB_URL {redacted_url(url)!r} is not an http(s) URL: set "
                "it to the "
                "opentsdbEndpoint of the vScope token, e.g. https://opentsdb.gra1-ovh.metrics.ovh.net"
            )
        elif parts.username or parts.password:
            problems.append(
                "VSCOPE_OPENTSDB_URL contains credentials: remove them from the URL and put "
                "the token in VSCOPE_OPENTSDB_TOKEN"
            )
    return url.rstrip("/") if url else None, Secret(token) if token else None


def _load_data_dir(environ: Mapping[str, str], problems: list[str]) -> Path:
    path = Path(_clean(environ, "VSCOPE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    if path.exists() and not path.is_dir():
        problems.append(
            f"VSCOPE_DATA_DIR {str(path)!r} exists and is not a folder: point it to a folder"
        )
    resolved = path.resolve()
    if any(char in str(resolved) for char in "*?[]{}"):
        # The DuckDB view over the lake is a glob under this folder, where these characters
        # would be read as patterns.
        problems.append(
            f"VSCOPE_DATA_DIR {str(resolved)!r} contains a glob character (* ? [ ] {{ }}): "
            "choose a folder whose path has none"
        )
    if "\\" in str(resolved):
        # DuckDB reads a backslash in a file path as a folder separator, so it would open
        # another path than this one.
        problems.append(
            f"VSCOPE_DATA_DIR {str(resolved)!r} contains a backslash, which DuckDB reads as a "
            "folder separator: choose a folder whose path has none"
        )
    return resolved


def load_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return VSCOPE_DATA_DIR alone, for commands that only read the lake or DuckDB file."""
    problems: list[str] = []
    data_dir = _load_data_dir(os.environ if environ is None else environ, problems)
    if problems:
        raise SettingsError(problems)
    return data_dir


@dataclass(frozen=True)
class LakeBucket:
    """The bucket and prefix of VSCOPE_LAKE_URL and the connection to its store."""

    # `bucket` or `bucket/prefix`, without scheme or trailing `/`.
    bucket_and_prefix: str
    connection: S3Connection

    @property
    def url(self) -> str:
        return f"s3://{self.bucket_and_prefix}"


def lake_location(data_dir: Path, bucket: LakeBucket | None) -> LakeLocation:
    """Return the lake in `bucket` if one is configured, else the lake folder `data_dir`."""
    if bucket is None:
        return LakeLocation.local(data_dir)
    return LakeLocation.bucket(bucket.bucket_and_prefix, bucket.connection)


# S3 bucket names: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending
# with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_LAKE_URL_EXAMPLE = "s3://my-bucket/vscope"
_S3_ENDPOINT_EXAMPLE = "https://s3.gra.io.cloud.ovh.net"
_S3_VARIABLES = (
    "VSCOPE_S3_ENDPOINT",
    "VSCOPE_S3_REGION",
    "VSCOPE_S3_ACCESS_KEY_ID",
    "VSCOPE_S3_SECRET_ACCESS_KEY",
    "VSCOPE_S3_URL_STYLE",
)


def _load_lake_prefix(text: str, problems: list[str]) -> str | None:
    parts = urlsplit(text)
    if parts.scheme != "s3":
        problems.append(
            f"VSCOPE_LAKE_URL {text!r} is not an s3:// URL: set it to s3://<bucket>/<prefix>, "
            f"e.g. {_LAKE_URL_EXAMPLE}, or leave it unset to keep the lake under VSCOPE_DATA_DIR"
        )
        return None
    bucket = parts.netloc
    prefix = parts.path.strip("/")
    if not bucket:
        problems.append(
            f"VSCOPE_LAKE_URL {text!r} has no bucket: set it to s3://<bucket>/<prefix>, "
            f"e.g. {_LAKE_URL_EXAMPLE}"
        )
        return None
    if not _BUCKET_NAME.fullmatch(bucket):
        problems.append(
            f"VSCOPE_LAKE_URL {text!r} names the bucket {bucket!r}, which is not a valid bucket "
            "name: use 3 to 63 lower-case letters, digits, dots or hyphens"
        )
        return None
    if parts.query or parts.fragment or any(char in prefix for char in "*?[]{}\\'\"="):
        # The DuckDB views glob under this prefix and the Hive keys are `key=value` folders.
        problems.append(
            f"VSCOPE_LAKE_URL {text!r} has a prefix with a character that DuckDB globs or Hive "
            "partitioning would misread (* ? [ ] { } \\ ' \" = #): use letters, digits, "
            "'/', '.', '_' and '-'"
        )
        return None
    return f"{bucket}/{prefix}" if prefix else bucket


def _load_s3_endpoint(environ: Mapping[str, str], problems: list[str]) -> str | None:
    endpoint = _clean(environ, "VSCOPE_S3_ENDPOINT")
    if endpoint is None:
        problems.append(
            "VSCOPE_S3_ENDPOINT is missing while VSCOPE_LAKE_URL is set: set it to the store's "
            f"URL, e.g. {_S3_ENDPOINT_EXAMPLE}"
        )
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            f"VSCOPE_S3_ENDPOINT {redacted_url(endpoint)!r} is not an http(s) URL: set it "
            "to the store's URL, "
            f"e.g. {_S3_ENDPOINT_EXAMPLE}"
        )
        return None
    if parts.username or parts.password or parts.path.strip("/") or parts.query:
        problems.append(
            f"VSCOPE_S3_ENDPOINT {redacted_url(endpoint)!r} must be a bare scheme, host "
            "and port: remove any credentials, path or query from it (the bucket goes in "
            "VSCOPE_LAKE_URL, the keys in VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY)"
        )
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _load_lake_bucket(environ: Mapping[str, str], problems: list[str]) -> LakeBucket | None:
    text = _clean(environ, "VSCOPE_LAKE_URL")
    if text is None:
        stray = [name for name in _S3_VARIABLES if _clean(environ, name)]
        if stray:
            problems.append(
                f"{', '.join(stray)} set while VSCOPE_LAKE_URL is not: set VSCOPE_LAKE_URL to "
                f"the bucket, e.g. {_LAKE_URL_EXAMPLE}, or unset them to keep the lake under "
                "VSCOPE_DATA_DIR"
            )
        return None
    prefix = _load_lake_prefix(text, problems)
    endpoint = _load_s3_endpoint(environ, problems)
    region = _clean(environ, "VSCOPE_S3_REGION")
    if region is None:
        problems.append(
            "VSCOPE_S3_REGION is missing while VSCOPE_LAKE_URL is set: set it to the store's "
            "region, e.g. gra for https://s3.gra.io.cloud.ovh.net"
        )
    key_id = _clean(environ, "VSCOPE_S3_ACCESS_KEY_ID")
    secret = _clean(environ, "VSCOPE_S3_SECRET_ACCESS_KEY")
    if key_id and not secret:
        problems.append(
            "VSCOPE_S3_SECRET_ACCESS_KEY is missing while VSCOPE_S3_ACCESS_KEY_ID is set: set "
            "it to the secret of that access key"
        )
    elif secret and not key_id:
        problems.append(
            "VSCOPE_S3_ACCESS_KEY_ID is missing while VSCOPE_S3_SECRET_ACCESS_KEY is set: set "
            "it to the access key that the secret belongs to"
        )
    elif not key_id:
        problems.append(
            "VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY are missing while "
            "VSCOPE_LAKE_URL is set: set them to an S3 access key and its secret (OVHcloud: "
            "the S3 credentials of an Object Storage user)"
        )
    style = (_clean(environ, "VSCOPE_S3_URL_STYLE") or "path").lower()
    if style not in ("path", "vhost"):
        problems.append(
            f"VSCOPE_S3_URL_STYLE {style!r} is invalid: expected path (bucket in the URL path, "
            "the default) or vhost (bucket in the host name)"
        )
    if prefix is None or endpoint is None or region is None or not key_id or not secret:
        return None
    if style not in ("path", "vhost"):
        return None
    connection = S3Connection(
        endpoint=endpoint,
        region=region,
        access_key_id=key_id,
        secret_access_key=Secret(secret),
        url_style="vhost" if style == "vhost" else "path",
    )
    return LakeBucket(prefix, connection)


def load_lake(environ: Mapping[str, str] | None = None) -> tuple[Path, LakeBucket | None]:
    """Return VSCOPE_DATA_DIR and the lake's bucket, for commands that only read the data."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    data_dir = _load_data_dir(environ, problems)
    bucket = _load_lake_bucket(environ, problems)
    if problems:
        raise SettingsError(problems)
    return data_dir, bucket


def _load_share_with_group(environ: Mapping[str, str], problems: list[str]) -> bool:
    text = _clean(environ, "VSCOPE_SHARE_WITH_GROUP")
    if text is None:
        return False
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    problems.append(
        f"VSCOPE_SHARE_WITH_GROUP {text!r} is invalid: expected true or false (default false). "
        "true creates files with mode 0o640 and folders with 0o750, so that the group of the "
        "data folder can read them; false keeps them private (0o600 and 0o700)"
    )
    return False


def load_file_modes(environ: Mapping[str, str] | None = None) -> FileModes:
    """Return the file and folder modes of VSCOPE_SHARE_WITH_GROUP alone, for the report command."""
    problems: list[str] = []
    share = _load_share_with_group(os.environ if environ is None else environ, problems)
    if problems:
        raise SettingsError(problems)
    return file_modes(share)


def _load_extra_metrics(environ: Mapping[str, str], problems: list[str]) -> tuple[MetricSpec, ...]:
    text = _clean(environ, "VSCOPE_EXTRA_METRICS")
    if text is None:
        return ()
    specs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            specs.append(parse_extra_metric(item))
        except CatalogError as error:
            problems.append(f"VSCOPE_EXTRA_METRICS: {error}")
    return tuple(specs)


_DOWNSAMPLE = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d|w|n|y)-[a-z0-9]+(-(none|nan|null|zero))?$")


def _number(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    low: float,
    high: float,
    integer: bool,
    problems: list[str],
) -> float:
    text = _clean(environ, name)
    if text is None:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        problems.append(
            f"{name} {text!r} is invalid: expected {kind} from {low:g} to {high:g} "
            f"(default {default:g})"
        )
        return default
    return value


def _load_opentsdb_tuning(environ: Mapping[str, str], problems: list[str]) -> OpenTSDBTuning:
    defaults = OpenTSDBTuning()
    downsample = _clean(environ, "VSCOPE_OPENTSDB_DOWNSAMPLE")
    if downsample is not None and downsample.lower() in ("none", "raw"):
        downsample = None
    if downsample is not None and not _DOWNSAMPLE.match(downsample):
        problems.append(
            f"VSCOPE_OPENTSDB_DOWNSAMPLE {downsample!r} is not an OpenTSDB downsample spec: "
            "use <n><unit>-<aggregator>[-<fill>] such as 5m-avg, or leave it unset for raw points"
        )
    return OpenTSDBTuning(
        max_concurrency=int(
            _number(
                environ,
                "VSCOPE_OPENTSDB_MAX_CONCURRENCY",
                defaults.max_concurrency,
                low=1,
                high=64,
                integer=True,
                problems=problems,
            )
        ),
        rate_limit=_number(
            environ,
            "VSCOPE_OPENTSDB_RATE_LIMIT",
            defaults.rate_limit,
            low=0.1,
            high=1000,
            integer=False,
            problems=problems,
        ),
        read_timeout=_number(
            environ,
            "VSCOPE_OPENTSDB_TIMEOUT",
            defaults.read_timeout,
            low=1,
            high=3600,
            integer=False,
            problems=problems,
        ),
        downsample=downsample,
    )


# More processes than this only add memory: each decodes and writes a whole metric-day, and the
# shared OpenTSDB request slots bound the fetches of all of them together.
MAX_WORKERS = 64


def _load_workers(environ: Mapping[str, str], problems: list[str]) -> int:
    return int(
        _number(
            environ,
            "VSCOPE_WORKERS",
            1,
            low=1,
            high=MAX_WORKERS,
            integer=True,
            problems=problems,
        )
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from `environ` (default: the process environment).

    Raises SettingsError naming every missing or invalid variable and how to set it.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    credentials = _load_ovh(environ, problems)
    service_names = _load_service_names(environ, problems)
    user_login, user_id = _load_user(environ, problems)
    opentsdb_url, opentsdb_token = _load_opentsdb(environ, problems)
    data_dir = _load_data_dir(environ, problems)
    extra_metrics = _load_extra_metrics(environ, problems)
    opentsdb_tuning = _load_opentsdb_tuning(environ, problems)
    share_with_group = _load_share_with_group(environ, problems)
    lake_bucket = _load_lake_bucket(environ, problems)
    workers = _load_workers(environ, problems)
    # These are read on their own too (when the code location loads, and before an ingest
    # creates its instance), but checked here as well so one message lists every problem.
    start_date = _load_start_date(environ, problems)
    freshness_hour = _load_freshness_hour(environ, problems)
    dagster_storage = _load_dagster_storage(environ, problems)
    if problems:
        raise SettingsError(problems)
    return Settings(
        ovh=credentials,
        service_names=service_names,
        user_login=user_login,
        user_id=user_id,
        opentsdb_url=opentsdb_url,
        opentsdb_token=opentsdb_token,
        data_dir=data_dir,
        extra_metrics=extra_metrics,
        opentsdb_tuning=opentsdb_tuning,
        share_with_group=share_with_group,
        lake_bucket=lake_bucket,
        workers=workers,
        start_date=start_date,
        freshness_hour=freshness_hour,
        dagster_storage=dagster_storage,
    )


def _load_start_date(environ: Mapping[str, str], problems: list[str]) -> dt.date:
    text = _clean(environ, "VSCOPE_START_DATE")
    if text is None:
        return DEFAULT_START_DATE
    try:
        start = dt.date.fromisoformat(text)
    except ValueError:
        problems.append(
            f"VSCOPE_START_DATE {text!r} is not a date: use YYYY-MM-DD, e.g. 2025-01-01"
        )
        return DEFAULT_START_DATE
    today = dt.datetime.now(dt.UTC).date()
    if start >= today:
        problems.append(
            f"VSCOPE_START_DATE {text!r} is not before today ({today.isoformat()} UTC): "
            "set it to a past day, the first one to ingest"
        )
        return DEFAULT_START_DATE
    return start


def _load_freshness_hour(environ: Mapping[str, str], problems: list[str]) -> int:
    text = _clean(environ, "VSCOPE_FRESHNESS_HOUR")
    if text is None:
        return DEFAULT_FRESHNESS_HOUR
    if not text.isdigit() or not 0 <= int(text) <= 23:
        problems.append(
            f"VSCOPE_FRESHNESS_HOUR {text!r} is not an hour: use a whole number from 0 to 23 "
            "(UTC), e.g. 6"
        )
        return DEFAULT_FRESHNESS_HOUR
    return int(text)


def _load_code_location_settings(environ: Mapping[str, str] | None) -> tuple[dt.date, int]:
    """Return VSCOPE_START_DATE and VSCOPE_FRESHNESS_HOUR, raising one SettingsError for both.

    The code location reads both when it loads, so a problem in either one stops it, and the
    message lists both.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    start = _load_start_date(environ, problems)
    hour = _load_freshness_hour(environ, problems)
    if problems:
        raise SettingsError(problems)
    return start, hour


def load_start_date(environ: Mapping[str, str] | None = None) -> dt.date:
    """Return the first daily partition, from VSCOPE_START_DATE.

    Read when the code location loads, because it shapes the partitions definition. Raises
    SettingsError when VSCOPE_START_DATE or VSCOPE_FRESHNESS_HOUR is invalid.
    """
    return _load_code_location_settings(environ)[0]


def load_freshness_hour(environ: Mapping[str, str] | None = None) -> int:
    """Return the UTC hour by which yesterday's partitions must exist, from VSCOPE_FRESHNESS_HOUR.

    Read when the code location loads, because it shapes the freshness checks' schedule. Raises
    SettingsError when VSCOPE_START_DATE or VSCOPE_FRESHNESS_HOUR is invalid.
    """
    return _load_code_location_settings(environ)[1]


# Values of VSCOPE_DAGSTER_STORAGE. sqlite keeps the instance in files under DAGSTER_HOME, and
# postgres keeps it in the database that the DAGSTER_PG_* variables name.
DAGSTER_STORAGE_KINDS = ("sqlite", "postgres")
DEFAULT_DAGSTER_STORAGE = "sqlite"

# The variables that dagster.postgres.yaml reads when the instance loads, with what each holds.
POSTGRES_VARIABLES = {
    "DAGSTER_PG_HOST": "the server's host name or address",
    "DAGSTER_PG_PORT": "the server's TCP port, usually 5432",
    "DAGSTER_PG_USER": "the role Dagster connects as",
    "DAGSTER_PG_PASSWORD": "that role's password, or an empty value when the server asks none",
    "DAGSTER_PG_DB": "the database that holds Dagster's tables",
}


@dataclass(frozen=True)
class PostgresConnection:
    """Connection settings of the PostgreSQL instance storage, from the DAGSTER_PG_* variables."""

    host: str
    port: int
    user: str
    password: Secret
    database: str

    def describe(self) -> str:
        """Return user@host:port/database, for messages: the password is left out."""
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class DagsterStorage:
    """The Dagster instance storage that VSCOPE_DAGSTER_STORAGE selects."""

    kind: str
    # Set when kind is "postgres", None for "sqlite".
    postgres: PostgresConnection | None = None


def _load_postgres_connection(
    environ: Mapping[str, str], problems: list[str]
) -> PostgresConnection | None:
    # An empty password is valid (trust or peer authentication), so presence is tested, not
    # truthiness, and the password is not stripped.
    unset = False
    for name, meaning in POSTGRES_VARIABLES.items():
        if name not in environ:
            state = "missing"
        elif name != "DAGSTER_PG_PASSWORD" and not environ[name].strip():
            state = "empty"
        else:
            continue
        unset = True
        problems.append(
            f"{name} is {state} while VSCOPE_DAGSTER_STORAGE=postgres: set it to {meaning}"
        )
    if unset:
        return None

    port_text = environ["DAGSTER_PG_PORT"].strip()
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        problems.append(
            f"DAGSTER_PG_PORT {port_text!r} is not a TCP port: use a whole number from 1 to "
            "65535, usually 5432"
        )
        return None
    return PostgresConnection(
        host=environ["DAGSTER_PG_HOST"].strip(),
        port=int(port_text),
        user=environ["DAGSTER_PG_USER"].strip(),
        password=Secret(environ["DAGSTER_PG_PASSWORD"]),
        database=environ["DAGSTER_PG_DB"].strip(),
    )


def _load_dagster_storage(environ: Mapping[str, str], problems: list[str]) -> DagsterStorage:
    text = _clean(environ, "VSCOPE_DAGSTER_STORAGE")
    kind = DEFAULT_DAGSTER_STORAGE if text is None else text.lower()
    if kind not in DAGSTER_STORAGE_KINDS:
        problems.append(
            f"VSCOPE_DAGSTER_STORAGE {text!r} is invalid: expected sqlite (the default, "
            "files under DAGSTER_HOME) or postgres (a PostgreSQL database named by the "
            "DAGSTER_PG_* variables)"
        )
        return DagsterStorage(DEFAULT_DAGSTER_STORAGE)
    if kind == "sqlite":
        return DagsterStorage(kind)
    return DagsterStorage(kind, _load_postgres_connection(environ, problems))


def load_dagster_storage(environ: Mapping[str, str] | None = None) -> DagsterStorage:
    """Return the instance storage from VSCOPE_DAGSTER_STORAGE (default sqlite).

    For postgres, the DAGSTER_PG_* variables must be set too. Raises SettingsError naming every
    missing or invalid variable. The message never contains the password.
    """
    problems: list[str] = []
    storage = _load_dagster_storage(os.environ if environ is None else environ, problems)
    if problems:
        raise SettingsError(problems)
    return storage
