"""VSCOPE_LAKE_URL and VSCOPE_S3_* settings: where the lake goes, and each mistake's message."""

from __future__ import annotations

from pathlib import Path

import pytest

from vscope_pipeline.settings import SettingsError, load_lake, load_settings

KEYS = {
    "OVH_APPLICATION_KEY": "app-key",
    "OVH_APPLICATION_SECRET": "app-secret",
    "OVH_CONSUMER_KEY": "consumer-key",
}
S3 = {
    "VSCOPE_LAKE_URL": "s3://vscope-lake/prod/lake/",
    "VSCOPE_S3_ENDPOINT": "https://s3.gra.io.cloud.ovh.net",
    "VSCOPE_S3_REGION": "gra",
    "VSCOPE_S3_ACCESS_KEY_ID": "key-id",
    "VSCOPE_S3_SECRET_ACCESS_KEY": "secret-key",
}


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings({**KEYS, **environ})
    return raised.value.problems


def test_unset_keeps_lake_in_data_dir(tmp_path: Path) -> None:
    settings = load_settings({**KEYS, "VSCOPE_DATA_DIR": str(tmp_path)})

    assert settings.lake_bucket is None
    assert settings.lake.is_local
    assert settings.lake.root == str(tmp_path)


def test_bucket_lake(tmp_path: Path) -> None:
    settings = load_settings({**KEYS, **S3, "VSCOPE_DATA_DIR": str(tmp_path)})

    lake = settings.lake
    assert lake.root == "vscope-lake/prod/lake"
    assert lake.url(lake.path("metrics")) == "s3://vscope-lake/prod/lake/metrics"
    assert lake.s3 is not None
    assert lake.s3.host == "s3.gra.io.cloud.ovh.net"
    assert lake.s3.scheme == "https"
    assert lake.s3.url_style == "path"
    # The DuckDB file stays local.
    assert settings.duckdb_path == tmp_path / "vscope.duckdb"
    assert "secret-key" not in repr(settings)


def test_vhost_style_and_bucket_only() -> None:
    settings = load_settings(
        {**KEYS, **S3, "VSCOPE_LAKE_URL": "s3://vscope-lake", "VSCOPE_S3_URL_STYLE": "VHOST"}
    )

    assert settings.lake.root == "vscope-lake"
    assert settings.lake.s3 is not None
    assert settings.lake.s3.url_style == "vhost"


def test_no_bucket() -> None:
    assert _problems({**S3, "VSCOPE_LAKE_URL": "s3:///lake"}) == [
        "VSCOPE_LAKE_URL 's3:///lake' has no bucket: set it to s3://<bucket>/<prefix>, "
        "e.g. s3://my-bucket/vscope"
    ]


def test_not_s3_url() -> None:
    assert _problems({**S3, "VSCOPE_LAKE_URL": "/srv/lake"}) == [
        "VSCOPE_LAKE_URL '/srv/lake' is not an s3:// URL: set it to s3://<bucket>/<prefix>, "
        "e.g. s3://my-bucket/vscope, or leave it unset to keep the lake under VSCOPE_DATA_DIR"
    ]


def test_glob_in_prefix() -> None:
    assert _problems({**S3, "VSCOPE_LAKE_URL": "s3://vscope-lake/a*"}) == [
        "VSCOPE_LAKE_URL 's3://vscope-lake/a*' has a prefix with a character that DuckDB globs "
        "or Hive partitioning would misread (* ? [ ] { } \\ ' \" = #): use letters, digits, "
        "'/', '.', '_' and '-'"
    ]


def test_endpoint_not_http() -> None:
    assert _problems({**S3, "VSCOPE_S3_ENDPOINT": "s3.gra.io.cloud.ovh.net"}) == [
        "VSCOPE_S3_ENDPOINT 's3.gra.io.cloud.ovh.net' is not an http(s) URL: set it to the "
        "store's URL, e.g. https://s3.gra.io.cloud.ovh.net"
    ]


def test_endpoint_with_credentials() -> None:
    problems = _problems({**S3, "VSCOPE_S3_ENDPOINT": "https://user:hunter2@s3.example:8443"})

    assert problems == [
        "VSCOPE_S3_ENDPOINT 'https://s3.example:8443' must be a bare scheme, host and port: "
        "remove any credentials, path or query from it (the bucket goes in VSCOPE_LAKE_URL, the "
        "keys in VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY)"
    ]
    assert "hunter2" not in problems[0]
    assert "user" not in problems[0]


def test_endpoint_with_path_shown_without_query() -> None:
    # A query may carry a token, so its text is hidden.
    problems = _problems({**S3, "VSCOPE_S3_ENDPOINT": "http://127.0.0.1:9000/lake?x=1"})

    assert problems == [
        "VSCOPE_S3_ENDPOINT 'http://127.0.0.1:9000/lake?<hidden>' must be a bare scheme, host and "
        "port: remove any credentials, path or query from it (the bucket goes in "
        "VSCOPE_LAKE_URL, the keys in VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY)"
    ]


def test_endpoint_with_password_path_and_at_sign() -> None:
    problems = _problems({**S3, "VSCOPE_S3_ENDPOINT": "https://u:p@ss:w0rd@s3.example:443/b"})

    assert problems == [
        "VSCOPE_S3_ENDPOINT 'https://s3.example:443/b' must be a bare scheme, host and port: "
        "remove any credentials, path or query from it (the bucket goes in VSCOPE_LAKE_URL, the "
        "keys in VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY)"
    ]
    assert "w0rd" not in problems[0]


@pytest.mark.parametrize(
    "endpoint", ["ftp://alice:s3cr3t@127.0.0.1:9000/base", "s3://alice:s3cr3t@127.0.0.1:9"]
)
def test_non_http_endpoint_hides_password(endpoint: str) -> None:
    problems = _problems({**S3, "VSCOPE_S3_ENDPOINT": endpoint})

    assert len(problems) == 1
    assert problems[0].startswith(f"VSCOPE_S3_ENDPOINT '{endpoint.split('://')[0]}://127.0.0.1:9")
    assert "is not an http(s) URL" in problems[0]
    assert "s3cr3t" not in problems[0]
    assert "alice" not in problems[0]


def test_access_key_without_secret() -> None:
    environ = {**S3}
    del environ["VSCOPE_S3_SECRET_ACCESS_KEY"]

    assert _problems(environ) == [
        "VSCOPE_S3_SECRET_ACCESS_KEY is missing while VSCOPE_S3_ACCESS_KEY_ID is set: set it to "
        "the secret of that access key"
    ]


def test_secret_without_access_key() -> None:
    environ = {**S3}
    del environ["VSCOPE_S3_ACCESS_KEY_ID"]

    problems = _problems(environ)
    assert problems == [
        "VSCOPE_S3_ACCESS_KEY_ID is missing while VSCOPE_S3_SECRET_ACCESS_KEY is set: set it to "
        "the access key that the secret belongs to"
    ]
    assert "secret-key" not in problems[0]


def test_every_problem_listed() -> None:
    problems = _problems({"VSCOPE_LAKE_URL": "s3://vscope-lake", "VSCOPE_S3_URL_STYLE": "dns"})

    assert problems == [
        "VSCOPE_S3_ENDPOINT is missing while VSCOPE_LAKE_URL is set: set it to the store's "
        "URL, e.g. https://s3.gra.io.cloud.ovh.net",
        "VSCOPE_S3_REGION is missing while VSCOPE_LAKE_URL is set: set it to the store's "
        "region, e.g. gra for https://s3.gra.io.cloud.ovh.net",
        "VSCOPE_S3_ACCESS_KEY_ID and VSCOPE_S3_SECRET_ACCESS_KEY are missing while "
        "VSCOPE_LAKE_URL is set: set them to an S3 access key and its secret (OVHcloud: the "
        "S3 credentials of an Object Storage user)",
        "VSCOPE_S3_URL_STYLE 'dns' is invalid: expected path (bucket in the URL path, the "
        "default) or vhost (bucket in the host name)",
    ]


def test_s3_setting_without_lake_url() -> None:
    assert _problems({"VSCOPE_S3_ENDPOINT": "https://s3.gra.io.cloud.ovh.net"}) == [
        "VSCOPE_S3_ENDPOINT set while VSCOPE_LAKE_URL is not: set VSCOPE_LAKE_URL to the "
        "bucket, e.g. s3://my-bucket/vscope, or unset them to keep the lake under "
        "VSCOPE_DATA_DIR"
    ]


def test_load_lake_for_readers(tmp_path: Path) -> None:
    data_dir, bucket = load_lake({**S3, "VSCOPE_DATA_DIR": str(tmp_path)})

    assert data_dir == tmp_path
    assert bucket is not None
    assert bucket.url == "s3://vscope-lake/prod/lake"
