"""`vscope-pipeline doctor` against the simulator: passing, and failing for each kind of cause."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from vscope_pipeline.cli import main
from vscope_pipeline.doctor.api_checks import check_clock
from vscope_pipeline.ovh.client import build_ovh_client
from vscope_pipeline.ovh.retrying import RetryingClient
from vscope_pipeline.retry import RetryPolicy
from vscope_pipeline.simulator.credentials import AccessRule, SimulatorCredentials
from vscope_pipeline.simulator.ovh_faults import ForcedApiResponse
from vscope_pipeline.simulator.runner import RunningSimulator, running_simulator

SERVICE = "pcc-203-0-113-10"
TOKEN_PATH = r"/dedicatedCloud/[^/]+/user/\d+/(metricsToken|getVscopeMetricsToken)"


def _clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every OVH_ and VSCOPE_ variable for the test."""
    for name in list(os.environ):
        if name.startswith(("OVH_", "VSCOPE_")):
            monkeypatch.delenv(name)


@contextmanager
def pointed_at(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **options: Any
) -> Iterator[RunningSimulator]:
    """Run a 3-VM simulator with `options` and point the settings at it."""
    _clear_settings(monkeypatch)
    with running_simulator(vm_count=3, **options) as simulator:
        for name, value in simulator.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path / "data"))
        yield simulator


def _lines(text: str) -> list[str]:
    # The query time and the free space change from run to run.
    lines = [re.sub(r"in \d+\.\d\d s$", "in N s", line) for line in text.splitlines()]
    return [re.sub(r"\d+\.\d GiB free", "N GiB free", line) for line in lines]


def _output(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return _lines(capsys.readouterr().out)


def test_doctor_passes_on_simulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pointed_at(monkeypatch, tmp_path) as simulator:
        code = main(["doctor"])
    captured = capsys.readouterr()
    credentials = simulator.credentials
    for secret in (
        credentials.application_secret,
        credentials.consumer_key,
        credentials.metrics_token,
    ):
        assert secret not in captured.out + captured.err
    assert _lines(captured.out) == [
        f"OK    configuration: settings loaded: endpoint {simulator.ovh_endpoint}, services: "
        f"{SERVICE}, user login admin, data folder {tmp_path / 'data'}",
        "OK    clock: local clock within 1 s of OVH's GET /auth/time",
        "OK    access rules: consumer key with credential id 424242 (expires never) allows "
        "every call the pipeline makes",
        f"OK    services: 1 from VSCOPE_SERVICE_NAMES: {SERVICE}",
        f"OK    metrics token of {SERVICE}: obtained with POST .../metricsToken; OpenTSDB "
        f"endpoint {simulator.opentsdb_url}",
        f"OK    OpenTSDB query of {SERVICE}: POST /api/query of vscope.host.cpu.usage.perc over "
        "the last hour returned 1 series, 1 point(s) in N s",
        f"OK    data folder: {tmp_path / 'data'} will be created in {tmp_path}, writable, "
        "N GiB free",
        "doctor: 7 OK, 0 warning(s), 0 failure(s)",
    ]
    assert code == 0


def test_doctor_names_removed_access_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    read_only = dataclasses.replace(
        SimulatorCredentials(),
        access_rules=(AccessRule("GET", "/dedicatedCloud"), AccessRule("GET", "/dedicatedCloud/*")),
    )
    with pointed_at(monkeypatch, tmp_path, credentials=read_only):
        code = main(["doctor"])
    lines = _output(capsys)
    assert lines[2:4] == [
        "FAIL  access rules: consumer key with credential id 424242 (expires never) misses 1 "
        "rule(s): POST /dedicatedCloud/*/user/*/metricsToken",
        "      fix: request a new consumer key whose access rules include "
        "POST /dedicatedCloud/*/user/*/metricsToken, validate it, and set OVH_CONSUMER_KEY",
    ]
    assert lines[5].startswith(
        f"FAIL  metrics token of {SERVICE}: no vScope metrics token for user 2101 of {SERVICE}: "
    )
    assert "Add the access rule POST /dedicatedCloud/*/user/*/metricsToken" in lines[5]
    assert lines[-1] == "doctor: 4 OK, 0 warning(s), 2 failure(s)"
    assert code == 1


def test_doctor_fails_on_skewed_clock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pointed_at(monkeypatch, tmp_path, clock=lambda: time.time() + 600):
        code = main(["doctor"])
    lines = _output(capsys)
    # The two clocks are read a moment apart, so the whole seconds may differ by one.
    assert lines[1] in [
        f"FAIL  clock: local clock {skew} s behind OVH's GET /auth/time (more than 60 s)"
        for skew in (600, 601)
    ]
    assert lines[2] == (
        "      fix: synchronise the local clock with NTP (for example `timedatectl set-ntp "
        "true`, or chrony), then run doctor again"
    )
    assert lines[-1] == "doctor: 6 OK, 0 warning(s), 1 failure(s)"
    assert code == 1


def test_doctor_fails_without_token_route(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_found = ForcedApiResponse(
        404, "Got an invalid (or empty) URL", method="POST", path=TOKEN_PATH
    )
    with pointed_at(monkeypatch, tmp_path) as simulator:
        simulator.ovh_server.server.faults.force(not_found, not_found)
        code = main(["doctor"])
    lines = _output(capsys)
    user = f"/dedicatedCloud/{SERVICE}/user/2101"
    assert lines[4:6] == [
        f"FAIL  metrics token of {SERVICE}: no vScope metrics token for user 2101 of {SERVICE}: "
        f"POST {user}/metricsToken and POST {user}/getVscopeMetricsToken both returned 404 "
        "(metricsToken: Got an invalid (or empty) URL; getVscopeMetricsToken: Got an invalid "
        "(or empty) URL), so both routes are missing on this account; set VSCOPE_OPENTSDB_URL "
        "and VSCOPE_OPENTSDB_TOKEN to use an OpenTSDB endpoint and token directly",
        "      fix: follow the advice in the message above",
    ]
    assert lines[-1] == "doctor: 5 OK, 0 warning(s), 1 failure(s)"
    assert code == 1


def test_doctor_fails_on_unknown_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pointed_at(monkeypatch, tmp_path):
        monkeypatch.setenv("VSCOPE_SERVICE_NAMES", f"pcc-nope,{SERVICE}")
        code = main(["doctor"])
    lines = _output(capsys)
    assert lines[3:5] == [
        f"FAIL  services: pcc-nope from VSCOPE_SERVICE_NAMES not found: the account sees {SERVICE}",
        "      fix: set VSCOPE_SERVICE_NAMES to services the account sees, or use the keys of "
        "the account that owns them",
    ]
    # The services that exist are still checked.
    assert lines[5].startswith(f"OK    metrics token of {SERVICE}: ")
    assert lines[-1] == "doctor: 6 OK, 0 warning(s), 1 failure(s)"
    assert code == 1


def test_doctor_wrong_secret_gives_its_own_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pointed_at(monkeypatch, tmp_path):
        monkeypatch.setenv("OVH_APPLICATION_SECRET", "not-the-secret")
        code = main(["doctor"])
    output = capsys.readouterr().out
    assert "not-the-secret" not in output
    assert "OVH_APPLICATION_SECRET" in output
    assert "check the service name in VSCOPE_SERVICE_NAMES" not in output
    assert "OK    services" not in output
    assert code == 1


def test_doctor_invalid_configuration_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear_settings(monkeypatch)
    monkeypatch.setenv("VSCOPE_OPENTSDB_RATE_LIMIT", "fast")
    monkeypatch.setenv("VSCOPE_WORKERS", "0")
    code = main(["doctor"])
    lines = capsys.readouterr().out.splitlines()
    # One line per problem: the OVH keys, the rate limit and the workers.
    assert lines[0] == "FAIL  configuration: invalid configuration (3 problems)"
    assert [line[:8] for line in lines[1:4]] == ["      - "] * 3
    assert lines[1].startswith("      - OVH_APPLICATION_KEY, ")
    assert lines[2].startswith("      - VSCOPE_OPENTSDB_RATE_LIMIT 'fast'")
    assert lines[3].startswith("      - VSCOPE_WORKERS '0'")
    assert lines[4] == (
        "      fix: set the variables named above (the README's Configuration table lists them)"
    )
    assert lines[-1] == "doctor: the configuration is invalid, so no request was sent"
    assert code == 2


def test_unreachable_api_blocks_checks() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe socket is closed.
    client = build_ovh_client(
        f"http://127.0.0.1:{port}/1.0",
        application_key="vScopeSimDemoAK1",
        application_secret="unused-application-secret-00001",
        consumer_key="unused-consumer-key-0000000000001",
    )
    result = check_clock(
        RetryingClient(client, rate_limiter=None, policy=RetryPolicy(max_attempts=1))
    )
    assert result.status == "FAIL"
    assert result.blocking is True
    assert result.detail.startswith(
        f"GET http://127.0.0.1:{port}/1.0/auth/time failed: connection failed: "
    )
    assert result.fix == "check OVH_ENDPOINT and that this machine reaches it (proxy, firewall)"


def test_doctor_simulator_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear_settings(monkeypatch)
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path / "data"))

    code = main(["doctor", "--simulator"])

    lines = _output(capsys)
    assert lines[0].startswith("simulator: OVH APIv6 http://127.0.0.1:")
    assert [line.split(":")[0] for line in lines[1:-1]] == [
        "OK    configuration",
        "OK    clock",
        "OK    access rules",
        "OK    services",
        f"OK    metrics token of {SERVICE}",
        f"OK    OpenTSDB query of {SERVICE}",
        "OK    data folder",
    ]
    assert lines[-1] == "doctor: 7 OK, 0 warning(s), 0 failure(s)"
    assert code == 0
    # The simulator's variables are gone once doctor returns.
    assert "OVH_ENDPOINT" not in os.environ


def test_doctor_simulator_sets_aside_service_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear_settings(monkeypatch)
    monkeypatch.setenv("VSCOPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OVH_CLIENT_ID", "service-account-id")
    monkeypatch.setenv("OVH_CLIENT_SECRET", "service-account-secret")

    code = main(["doctor", "--simulator"])

    lines = _output(capsys)
    assert (
        lines[0]
        == "note: --simulator replaces OVH_CLIENT_ID, OVH_CLIENT_SECRET from the environment"
    )
    assert lines[-1] == "doctor: 7 OK, 0 warning(s), 0 failure(s)"
    assert code == 0
    assert os.environ["OVH_CLIENT_ID"] == "service-account-id"
