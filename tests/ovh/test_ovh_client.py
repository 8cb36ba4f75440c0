"""python-ovh client construction for endpoint names and base URLs."""

import threading

import ovh
import ovh.client
import ovh.config
import pytest
from ovh_sim import CREDENTIALS

from vscope_pipeline.ovh.client import (
    BaseUrlClient,
    Endpoint,
    EndpointError,
    build_ovh_client,
    resolve_endpoint,
)

KEYS = {
    "application_key": CREDENTIALS.application_key,
    "application_secret": CREDENTIALS.application_secret,
    "consumer_key": CREDENTIALS.consumer_key,
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ovh-eu", Endpoint("https://eu.api.ovh.com/1.0", "ovh-eu", is_url=False)),
        (" ovh-ca ", Endpoint("https://ca.api.ovh.com/1.0", "ovh-ca", is_url=False)),
        ("http://127.0.0.1:8000/1.0", Endpoint("http://127.0.0.1:8000/1.0", None, is_url=True)),
        ("http://127.0.0.1:8000/1.0/", Endpoint("http://127.0.0.1:8000/1.0", None, is_url=True)),
        ("http://[::1]:8000/v1", Endpoint("http://[::1]:8000/v1", None, is_url=True)),
        ("https://proxy.example/ovh/1.0", Endpoint("https://proxy.example/ovh/1.0", None, True)),
        ("https://eu.api.ovh.com/v1", Endpoint("https://eu.api.ovh.com/v1", "ovh-eu", True)),
        ("https://ca.api.ovh.com/1.0", Endpoint("https://ca.api.ovh.com/1.0", "ovh-ca", True)),
    ],
)
def test_resolve_endpoint_accepts(value, expected):
    assert resolve_endpoint(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "ovh-mars",
            "OVH endpoint 'ovh-mars' is neither a python-ovh endpoint name nor a URL: use one of "
            "kimsufi-ca, kimsufi-eu, ovh-ca, ovh-eu, ovh-us, soyoustart-ca, soyoustart-eu, or a "
            "base URL such as https://eu.api.ovh.com/1.0",
        ),
        (
            "ftp://127.0.0.1/1.0",
            "OVH endpoint URL 'ftp://127.0.0.1/1.0' has scheme 'ftp': use http:// or https://, "
            "for example https://eu.api.ovh.com/1.0, or an endpoint name such as ovh-eu",
        ),
        (
            "http:///1.0",
            "OVH endpoint URL 'http:///1.0' has no valid host and port: write it as "
            "http(s)://host[:port]/<version>, for example http://127.0.0.1:8000/1.0",
        ),
        (
            "http://127.0.0.1:99999/1.0",
            "OVH endpoint URL 'http://127.0.0.1:99999/1.0' has no valid host and port: write it "
            "as http(s)://host[:port]/<version>, for example http://127.0.0.1:8000/1.0",
        ),
        (
            "http://127.0.0.1:8000/1.0?debug=1",
            "OVH endpoint URL 'http://127.0.0.1:8000/1.0?debug=1' has a query or fragment: give "
            "only the base URL, such as https://eu.api.ovh.com/1.0",
        ),
        (
            "http://127.0.0.1:8000",
            "OVH endpoint URL 'http://127.0.0.1:8000' has no API version path: add it, for "
            "example http://127.0.0.1:8000/1.0",
        ),
        (
            "http://127.0.0.1:8000/",
            "OVH endpoint URL 'http://127.0.0.1:8000/' has no API version path: add it, for "
            "example http://127.0.0.1:8000/1.0",
        ),
    ],
)
def test_resolve_endpoint_rejects(value, message):
    with pytest.raises(EndpointError) as caught:
        resolve_endpoint(value)
    assert str(caught.value) == message


def test_url_with_credentials_rejected_without_echo():
    with pytest.raises(EndpointError) as caught:
        resolve_endpoint("http://admin:hunter2@127.0.0.1:8000/1.0")
    assert str(caught.value) == (
        "OVH endpoint URL for host '127.0.0.1' contains credentials: remove them from the URL "
        "and set OVH_APPLICATION_KEY and the other keys instead"
    )


@pytest.mark.parametrize("endpoint", ["ovh-eu", "https://eu.api.ovh.com/1.0"])
def test_named_endpoint_gives_plain_client(endpoint):
    client = build_ovh_client(endpoint, application_key="ak", application_secret="as")
    assert type(client) is ovh.Client


def test_url_on_ovh_host_keeps_region():
    client = build_ovh_client(
        "https://eu.api.ovh.com/v1", application_key="ak", application_secret="as"
    )
    assert isinstance(client, BaseUrlClient)
    assert client.base_url == "https://eu.api.ovh.com/v1"


def test_concurrent_url_clients_leave_endpoints_alone():
    before = dict(ovh.client.ENDPOINTS)
    urls = [f"http://127.0.0.1:{8000 + index}/1.0" for index in range(16)]
    built: dict[str, str] = {}

    def build(url):
        built[url] = build_ovh_client(url, **KEYS).base_url

    threads = [threading.Thread(target=build, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == {url: url for url in urls}
    assert before == ovh.client.ENDPOINTS


def test_url_client_signs_requests_to_url(api, fleet):
    client = build_ovh_client(f"{api.url}/1.0", **KEYS)
    assert repr(client) == f"BaseUrlClient('{api.url}/1.0')"
    assert client.get("/dedicatedCloud") == [fleet.service_name]


def test_v1_alias_path(api, fleet):
    client = build_ovh_client(f"{api.url}/v1", **KEYS)
    assert client.get(f"/dedicatedCloud/{fleet.service_name}/datacenter") == [1201, 1202]


def test_keys_from_environment(api, fleet, monkeypatch):
    monkeypatch.setenv("OVH_APPLICATION_KEY", CREDENTIALS.application_key)
    monkeypatch.setenv("OVH_APPLICATION_SECRET", CREDENTIALS.application_secret)
    monkeypatch.setenv("OVH_CONSUMER_KEY", CREDENTIALS.consumer_key)
    client = build_ovh_client(f"{api.url}/1.0")
    assert client.get("/dedicatedCloud") == [fleet.service_name]


def test_keys_from_ovh_conf_section_named_after_url(api, fleet, monkeypatch, tmp_path):
    endpoint = f"{api.url}/1.0"
    config = tmp_path / "ovh.conf"
    config.write_text(
        f"[{endpoint}]\n"
        f"application_key={CREDENTIALS.application_key}\n"
        f"application_secret={CREDENTIALS.application_secret}\n"
        f"consumer_key={CREDENTIALS.consumer_key}\n"
        "[ovh-eu]\n"
        "consumer_key=production-key-never-sent-to-the-simulator\n"
    )
    monkeypatch.setattr(ovh.config, "CONFIG_PATH", [str(config)])
    client = build_ovh_client(endpoint)
    assert client.get("/dedicatedCloud") == [fleet.service_name]


def test_python_ovh_error_mapping_kept(api):
    client = build_ovh_client(f"{api.url}/1.0", **{**KEYS, "application_secret": "wrong" * 6})
    with pytest.raises(ovh.BadParametersError, match=r"^Invalid signature"):
        client.get("/dedicatedCloud")


def test_missing_keys_for_url_listed():
    with pytest.raises(EndpointError) as caught:
        build_ovh_client("http://127.0.0.1:8000/1.0", application_key="ak")
    assert str(caught.value) == (
        "missing OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY for OVH endpoint "
        "'http://127.0.0.1:8000/1.0': set them in the environment, or in the "
        "[http://127.0.0.1:8000/1.0] section of ovh.conf"
    )


@pytest.mark.parametrize("from_environment", [False, True])
def test_oauth2_rejected_for_foreign_url(monkeypatch, from_environment):
    keys = {}
    if from_environment:
        monkeypatch.setenv("OVH_CLIENT_ID", "id")
        monkeypatch.setenv("OVH_CLIENT_SECRET", "service-account-secret")
    else:
        keys = {"client_id": "id", "client_secret": "service-account-secret"}
    with pytest.raises(EndpointError) as caught:
        build_ovh_client("http://127.0.0.1:8000/1.0", **keys)
    assert str(caught.value) == (
        "OAuth2 (OVH_CLIENT_ID, OVH_CLIENT_SECRET) cannot be used with OVH endpoint "
        "'http://127.0.0.1:8000/1.0': python-ovh takes OAuth2 tokens from OVHcloud only, so "
        "use an application key, secret and consumer key for this URL, or an endpoint name"
    )
