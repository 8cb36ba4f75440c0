import datetime as dt
from pathlib import Path

import pytest
import requests

from vscope_pipeline.secrets import Secret
from vscope_pipeline.settings import (
    DagsterStorage,
    OpenTSDBTuning,
    SettingsError,
    load_data_dir,
    load_freshness_hour,
    load_settings,
    load_start_date,
)

KEYS = {
    "OVH_APPLICATION_KEY": "ak",
    "OVH_APPLICATION_SECRET": "as-secret-value",
    "OVH_CONSUMER_KEY": "ck-secret-value",
}
KEYS_HELP = (
    "create keys at https://eu.api.ovh.com/createToken/ (or the ca/us equivalent) or set them in "
    "ovh.conf; a service account uses OVH_CLIENT_ID and OVH_CLIENT_SECRET instead, and "
    "`vscope-pipeline ingest --simulator` needs none"
)


def test_defaults_with_api_keys(tmp_path):
    settings = load_settings({**KEYS, "VSCOPE_DATA_DIR": str(tmp_path)})
    assert settings.ovh.endpoint == "ovh-eu"
    assert settings.ovh.application_key == "ak"
    assert settings.ovh.application_secret == Secret("as-secret-value")
    assert settings.service_names is None
    assert settings.user_login == "admin"
    assert settings.user_id is None
    assert settings.opentsdb_url is None
    assert settings.data_dir == tmp_path.resolve()
    assert settings.duckdb_path == tmp_path.resolve() / "vscope.duckdb"


def test_base_url_endpoint_accepted():
    settings = load_settings({**KEYS, "OVH_ENDPOINT": "http://127.0.0.1:8000/1.0"})
    assert settings.ovh.endpoint == "http://127.0.0.1:8000/1.0"


def test_every_problem_in_one_message():
    environ = {
        "OVH_ENDPOINT": "ovh-mars",
        "VSCOPE_USER_ID": "abc",
        "VSCOPE_OPENTSDB_URL": "ftp://example",
        "VSCOPE_SERVICE_NAMES": "pcc-1, bad name",
        "VSCOPE_EXTRA_METRICS": "vm.mem.tps",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    problems = caught.value.problems
    assert len(problems) == 7
    message = str(caught.value)
    assert message.startswith("invalid configuration (7 problems):\n  - OVH_ENDPOINT: OVH endpoint")
    for name in (
        "OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY are missing",
        "VSCOPE_USER_ID 'abc' is not a positive integer",
        "VSCOPE_OPENTSDB_TOKEN is missing while VSCOPE_OPENTSDB_URL is set",
        "VSCOPE_OPENTSDB_URL 'ftp://example' is not an http(s) URL",
        "VSCOPE_SERVICE_NAMES 'pcc-1, bad name' is invalid",
        "extra metric 'vm.mem.tps' is not a vScope metric name",
    ):
        assert name in message


def test_code_location_settings_listed_with_others():
    today = dt.datetime.now(dt.UTC).date().isoformat()
    environ = {
        "VSCOPE_START_DATE": "2999-01-01",
        "VSCOPE_FRESHNESS_HOUR": "6am",
        "VSCOPE_DAGSTER_STORAGE": "mysql",
        "VSCOPE_WORKERS": "0",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)

    assert caught.value.problems == [
        f"OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY are missing: {KEYS_HELP}",
        "VSCOPE_WORKERS '0' is invalid: expected an integer from 1 to 64 (default 1)",
        f"VSCOPE_START_DATE '2999-01-01' is not before today ({today} UTC): set it to a past "
        "day, the first one to ingest",
        "VSCOPE_FRESHNESS_HOUR '6am' is not an hour: use a whole number from 0 to 23 (UTC), e.g. 6",
        "VSCOPE_DAGSTER_STORAGE 'mysql' is invalid: expected sqlite (the default, files under "
        "DAGSTER_HOME) or postgres (a PostgreSQL database named by the DAGSTER_PG_* variables)",
    ]
    assert str(caught.value).startswith("invalid configuration (5 problems):\n")


def test_unparsable_start_date_listed_with_others():
    environ = {
        **KEYS,
        "VSCOPE_START_DATE": "2026-13-01",
        "VSCOPE_DAGSTER_STORAGE": "postgres",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)

    assert caught.value.problems == [
        "VSCOPE_START_DATE '2026-13-01' is not a date: use YYYY-MM-DD, e.g. 2025-01-01",
        "DAGSTER_PG_DB is missing while VSCOPE_DAGSTER_STORAGE=postgres: set it to the "
        "database that holds Dagster's tables",
    ]


def test_code_location_settings_loaded():
    settings = load_settings(
        {**KEYS, "VSCOPE_START_DATE": "2026-03-01", "VSCOPE_FRESHNESS_HOUR": "7"}
    )

    assert settings.start_date == dt.date(2026, 3, 1)
    assert settings.freshness_hour == 7
    assert settings.dagster_storage == DagsterStorage("sqlite")


def test_one_missing_key_named_alone():
    environ = {**KEYS}
    del environ["OVH_CONSUMER_KEY"]
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)

    assert caught.value.problems == [
        "OVH_CONSUMER_KEY is missing: create keys at https://eu.api.ovh.com/createToken/ "
        "(or the ca/us equivalent) or set it in ovh.conf; a service account uses OVH_CLIENT_ID "
        "and OVH_CLIENT_SECRET instead, and `vscope-pipeline ingest --simulator` needs none"
    ]


def test_several_missing_keys_named_together():
    with pytest.raises(SettingsError) as caught:
        load_settings({"OVH_APPLICATION_KEY": "ak"})

    assert caught.value.problems == [
        "OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY are missing: create keys at "
        "https://eu.api.ovh.com/createToken/ (or the ca/us equivalent) or set them in ovh.conf; "
        "a service account uses OVH_CLIENT_ID and OVH_CLIENT_SECRET instead, and "
        "`vscope-pipeline ingest --simulator` needs none"
    ]


OAUTH2 = {"OVH_CLIENT_ID": "id", "OVH_CLIENT_SECRET": "service-account-secret"}


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9/1.0", "kimsufi-eu", "https://eu.api.kimsufi.com/1.0"],
)
def test_oauth2_rejected_without_token_url(endpoint, monkeypatch):
    def fail_on_request(*args, **kwargs):
        raise AssertionError("load_settings sent a request")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fail_on_request)
    with pytest.raises(SettingsError) as caught:
        load_settings({**OAUTH2, "OVH_ENDPOINT": endpoint})

    assert caught.value.problems == [
        f"OAuth2 (OVH_CLIENT_ID, OVH_CLIENT_SECRET) cannot be used with OVH_ENDPOINT "
        f"{endpoint!r}: python-ovh fetches service account tokens from OVHcloud only, for the "
        "endpoints ovh-ca, ovh-eu, ovh-us. Set OVH_ENDPOINT to one of these, or replace "
        "OVH_CLIENT_ID and OVH_CLIENT_SECRET with application keys (OVH_APPLICATION_KEY, "
        "OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY) to use this endpoint"
    ]
    assert "service-account-secret" not in str(caught.value)


@pytest.mark.parametrize("endpoint", ["ovh-eu", "ovh-ca", "ovh-us", "https://eu.api.ovh.com/v1"])
def test_oauth2_accepted_with_token_url(endpoint):
    settings = load_settings({**OAUTH2, "OVH_ENDPOINT": endpoint})

    assert settings.ovh.endpoint == endpoint
    assert settings.ovh.client_id == "id"
    assert settings.ovh.client_secret == Secret("service-account-secret")


def test_invalid_endpoint_with_oauth2_reported_once():
    with pytest.raises(SettingsError) as caught:
        load_settings({**OAUTH2, "OVH_ENDPOINT": "ovh-mars"})

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("OVH_ENDPOINT: OVH endpoint 'ovh-mars' is neither")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            "ovh-mars",
            "OVH_ENDPOINT: OVH endpoint 'ovh-mars' is neither a python-ovh endpoint name nor a URL",
        ),
        (
            "http://127.0.0.1:8000",
            "OVH_ENDPOINT: OVH endpoint URL 'http://127.0.0.1:8000' has no API version path",
        ),
        ("127.0.0.1:8000/1.0", "is neither a python-ovh endpoint name nor a URL"),
        ("http://u:p@127.0.0.1/1.0", "contains credentials"),
    ],
)
def test_invalid_endpoint(endpoint, expected):
    with pytest.raises(SettingsError, match="1 problem\\)") as caught:
        load_settings({**KEYS, "OVH_ENDPOINT": endpoint})
    assert expected in caught.value.problems[0]


def test_oauth2_and_keys_together_rejected():
    with pytest.raises(SettingsError) as caught:
        load_settings({**KEYS, "OVH_CLIENT_ID": "id", "OVH_CLIENT_SECRET": "s"})
    assert caught.value.problems == [
        "both API keys (OVH_APPLICATION_KEY...) and a service account (OVH_CLIENT_ID...) "
        "are set: keep only one of the two"
    ]


def test_oauth2_needs_both_values():
    with pytest.raises(SettingsError) as caught:
        load_settings({"OVH_CLIENT_ID": "id"})
    assert caught.value.problems == [
        "OVH_CLIENT_SECRET is missing: set it with the service account's value"
    ]


def test_user_login_and_id_exclusive():
    with pytest.raises(SettingsError) as caught:
        load_settings({**KEYS, "VSCOPE_USER_LOGIN": "admin", "VSCOPE_USER_ID": "3"})
    assert caught.value.problems == [
        "VSCOPE_USER_LOGIN and VSCOPE_USER_ID are both set: keep only one of them"
    ]


def test_user_id_and_opentsdb_override():
    settings = load_settings(
        {
            **KEYS,
            "VSCOPE_USER_ID": "42",
            "VSCOPE_OPENTSDB_URL": "https://opentsdb.example/",
            "VSCOPE_OPENTSDB_TOKEN": "tok",
            "VSCOPE_SERVICE_NAMES": "pcc-1,pcc-2,pcc-1",
            "VSCOPE_EXTRA_METRICS": "vscope.vm.mem.tps:MB",
        }
    )
    assert settings.user_id == 42
    assert settings.user_login is None
    assert settings.opentsdb_url == "https://opentsdb.example"
    assert settings.opentsdb_token == Secret("tok")
    assert settings.service_names == ("pcc-1", "pcc-2")
    assert [(m.name, m.entity_kind, m.unit) for m in settings.extra_metrics] == [
        ("vscope.vm.mem.tps", "vm", "MB")
    ]


def test_credentials_in_opentsdb_url_rejected():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                **KEYS,
                "VSCOPE_OPENTSDB_URL": "https://read:t@h.example",
                "VSCOPE_OPENTSDB_TOKEN": "t",
            }
        )
    assert "VSCOPE_OPENTSDB_URL contains credentials" in caught.value.problems[0]
    assert "read:t" not in str(caught.value)


def test_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(SettingsError) as caught:
        load_settings({**KEYS, "VSCOPE_DATA_DIR": str(path)})
    assert caught.value.problems == [
        f"VSCOPE_DATA_DIR {str(path)!r} exists and is not a folder: point it to a folder"
    ]


def test_secrets_never_in_repr():
    settings = load_settings(KEYS)
    text = repr(settings)
    assert "as-secret-value" not in text
    assert "ck-secret-value" not in text
    assert "Secret('***')" in text


def test_start_date():
    assert load_start_date({}) == dt.date(2025, 1, 1)
    assert load_start_date({"VSCOPE_START_DATE": "2026-03-01"}) == dt.date(2026, 3, 1)
    with pytest.raises(SettingsError, match="VSCOPE_START_DATE '2026-13-01' is not a date"):
        load_start_date({"VSCOPE_START_DATE": "2026-13-01"})
    with pytest.raises(SettingsError, match="is not before today"):
        load_start_date({"VSCOPE_START_DATE": "2999-01-01"})


@pytest.mark.parametrize("loader", [load_start_date, load_freshness_hour])
def test_code_location_settings_rejected_together(loader):
    environ = {"VSCOPE_START_DATE": "2026-13-01", "VSCOPE_FRESHNESS_HOUR": "24"}
    with pytest.raises(SettingsError) as caught:
        loader(environ)

    assert caught.value.problems == [
        "VSCOPE_START_DATE '2026-13-01' is not a date: use YYYY-MM-DD, e.g. 2025-01-01",
        "VSCOPE_FRESHNESS_HOUR '24' is not an hour: use a whole number from 0 to 23 (UTC), e.g. 6",
    ]


def test_data_dir_default_is_relative_to_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert load_settings(KEYS).data_dir == Path(tmp_path / "data").resolve()


def test_opentsdb_tuning_defaults_and_values():
    assert load_settings(KEYS).opentsdb_tuning == OpenTSDBTuning(4, 10.0, 120.0, None)
    tuning = load_settings(
        {
            **KEYS,
            "VSCOPE_OPENTSDB_MAX_CONCURRENCY": "8",
            "VSCOPE_OPENTSDB_RATE_LIMIT": "2.5",
            "VSCOPE_OPENTSDB_TIMEOUT": "30",
            "VSCOPE_OPENTSDB_DOWNSAMPLE": "5m-avg",
        }
    ).opentsdb_tuning
    assert tuning == OpenTSDBTuning(8, 2.5, 30.0, "5m-avg")


def test_opentsdb_tuning_errors():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                **KEYS,
                "VSCOPE_OPENTSDB_MAX_CONCURRENCY": "0",
                "VSCOPE_OPENTSDB_RATE_LIMIT": "fast",
                "VSCOPE_OPENTSDB_DOWNSAMPLE": "5 minutes",
            }
        )
    assert caught.value.problems == [
        "VSCOPE_OPENTSDB_DOWNSAMPLE '5 minutes' is not an OpenTSDB downsample spec: use "
        "<n><unit>-<aggregator>[-<fill>] such as 5m-avg, or leave it unset for raw points",
        "VSCOPE_OPENTSDB_MAX_CONCURRENCY '0' is invalid: expected an integer from 1 to 64 "
        "(default 4)",
        "VSCOPE_OPENTSDB_RATE_LIMIT 'fast' is invalid: expected a number from 0.1 to 1000 "
        "(default 10)",
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("lake[1]", "contains a glob character (* ? [ ] { }): "),
        ("lake\\2026", "contains a backslash, which DuckDB reads as a folder separator: "),
    ],
)
def test_data_dir_with_special_character(tmp_path, name, problem):
    folder = tmp_path / name
    with pytest.raises(SettingsError) as caught:
        load_data_dir({"VSCOPE_DATA_DIR": str(folder)})
    assert caught.value.problems == [
        f"VSCOPE_DATA_DIR {str(folder)!r} {problem}choose a folder whose path has none"
    ]


def test_load_data_dir_needs_no_keys(tmp_path):
    assert load_data_dir({"VSCOPE_DATA_DIR": str(tmp_path)}) == tmp_path.resolve()


EXPECTED_METRIC_FORM = (
    "expected 'vscope.<vm|host|filer>.<name>[:unit]' with dot-separated words of lower-case "
    "letters, digits and '_', for example 'vscope.vm.mem.tps:MB'"
)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a b",
        "x;DROP",
        "vscope.vm.x;DROP TABLE metric_points",
        "vscope.vm.../etc",
        "vscope.vm..x",
        "vscope.vm.x.",
        "vscope.vm.x/y",
        "vscope.vm.Mem",
        "vscope.vm.mém",
        "vscope.disk.x",
        "vscope.vm",
    ],
)
def test_malformed_extra_metric_rejected(name):
    with pytest.raises(SettingsError) as caught:
        load_settings({**KEYS, "VSCOPE_EXTRA_METRICS": f"vscope.vm.mem.tps, {name}"})

    assert caught.value.problems == [
        f"VSCOPE_EXTRA_METRICS: extra metric {name!r} is not a vScope metric name: "
        f"{EXPECTED_METRIC_FORM}"
    ]


@pytest.mark.parametrize("unit", ["x" * 17, "MB\x00", "KB\tper s"])
def test_malformed_extra_metric_unit_rejected(unit):
    with pytest.raises(SettingsError) as caught:
        load_settings({**KEYS, "VSCOPE_EXTRA_METRICS": f"vscope.vm.mem.tps:{unit}"})

    assert caught.value.problems == [
        f"VSCOPE_EXTRA_METRICS: extra metric 'vscope.vm.mem.tps' has unit {unit!r}: expected "
        "at most 16 printable characters, for example 'MB' or 'KB/s'"
    ]


def test_extra_metric_unit_with_odd_characters_kept():
    settings = load_settings({**KEYS, "VSCOPE_EXTRA_METRICS": "vscope.vm.mem.tps:'µs; x'"})

    (spec,) = settings.extra_metrics
    assert spec.unit == "'µs; x'"
    assert spec.min_value is None
    assert spec.max_value is None


def test_workers_default_and_value():
    assert load_settings(KEYS).workers == 1
    assert load_settings({**KEYS, "VSCOPE_WORKERS": " 4 "}).workers == 4


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "65"])
def test_workers_invalid(value):
    with pytest.raises(SettingsError) as caught:
        load_settings({**KEYS, "VSCOPE_WORKERS": value})
    assert caught.value.problems == [
        f"VSCOPE_WORKERS {value!r} is invalid: expected an integer from 1 to 64 (default 1)"
    ]
