"""Fixtures for the tests of `vscope_pipeline.ovh`: isolation from the machine's OVH settings,
the default simulated fleet, its APIv6 server and a client."""

import os
from collections.abc import Iterator

import ovh
import ovh.config
import pytest
from ovh_sim import ANCHOR_DAY, client_for, running_api

from vscope_pipeline.simulator.fleet import Fleet, build_fleet
from vscope_pipeline.simulator.http import ServerThread


@pytest.fixture(autouse=True)
def isolated_ovh_configuration(monkeypatch):
    """Hide the machine's OVH_* variables and ovh.conf files from python-ovh."""
    for name in list(os.environ):
        if name.startswith("OVH_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(ovh.config, "CONFIG_PATH", [])


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return build_fleet(ANCHOR_DAY)


@pytest.fixture(scope="module")
def api(fleet) -> Iterator[ServerThread]:
    with running_api(fleet) as thread:
        yield thread


@pytest.fixture
def client(api) -> ovh.Client:
    return client_for(api)
