from __future__ import annotations

from datetime import date, datetime

import pytest

from vscope_pipeline.catalog import BUILTIN_METRICS, MetricSpec, parse_extra_metric
from vscope_pipeline.opentsdb.planning import (
    DayWindow,
    build_query_body,
    build_window_body,
    day_window,
    describe_query,
    sub_window,
)

SPECS = {spec.name: spec for spec in BUILTIN_METRICS}
LABEL = "pcc-37-187-228-180_datacenter869"


def _datacenter_filter(label: str = LABEL) -> dict[str, object]:
    return {"type": "literal_or", "tagk": "datacenter", "filter": label, "groupBy": True}


def _wildcard(tag_key: str) -> dict[str, object]:
    return {"type": "wildcard", "tagk": tag_key, "filter": "*", "groupBy": True}


@pytest.mark.parametrize(
    ("spec", "day", "expected"),
    [
        pytest.param(
            SPECS["vscope.vm.cpu.ready"],
            date(2024, 5, 1),
            {
                "start": 1714521600000,
                "end": 1714607999999,
                "msResolution": True,
                "queries": [
                    {
                        "metric": "vscope.vm.cpu.ready",
                        "aggregator": "avg",
                        "filters": [_datacenter_filter(), _wildcard("vm")],
                    }
                ],
            },
            id="vm",
        ),
        pytest.param(
            SPECS["vscope.host.net.tx"],
            date(2024, 2, 29),
            {
                "start": 1709164800000,
                "end": 1709251199999,
                "msResolution": True,
                "queries": [
                    {
                        "metric": "vscope.host.net.tx",
                        "aggregator": "avg",
                        "filters": [_datacenter_filter(), _wildcard("host"), _wildcard("nicname")],
                    }
                ],
            },
            id="host-per-nic-leap-day",
        ),
        pytest.param(
            SPECS["vscope.host.cpu.usage.perc"],
            date(2023, 12, 31),
            {
                "start": 1703980800000,
                "end": 1704067199999,
                "msResolution": True,
                "queries": [
                    {
                        "metric": "vscope.host.cpu.usage.perc",
                        "aggregator": "avg",
                        "filters": [_datacenter_filter(), _wildcard("host")],
                    }
                ],
            },
            id="host-without-nic-year-end",
        ),
        pytest.param(
            SPECS["vscope.filer.datastore.diskspace.used"],
            date(2024, 3, 31),
            {
                "start": 1711843200000,
                "end": 1711929599999,
                "msResolution": True,
                "queries": [
                    {
                        "metric": "vscope.filer.datastore.diskspace.used",
                        "aggregator": "avg",
                        "filters": [_datacenter_filter(), _wildcard("datastore")],
                    }
                ],
            },
            id="filer-on-a-european-dst-change-day",
        ),
        pytest.param(
            parse_extra_metric("vscope.vm.mem.tps:MB"),
            date(2024, 5, 1),
            {
                "start": 1714521600000,
                "end": 1714607999999,
                "msResolution": True,
                "queries": [
                    {
                        "metric": "vscope.vm.mem.tps",
                        "aggregator": "avg",
                        "filters": [_datacenter_filter(), _wildcard("vm")],
                    }
                ],
            },
            id="extra-metric",
        ),
    ],
)
def test_query_body_cases(spec: MetricSpec, day: date, expected: dict[str, object]) -> None:
    assert build_query_body(spec, LABEL, day) == expected


def test_query_body_has_no_tags_key() -> None:
    body = build_query_body(SPECS["vscope.vm.net.rx"], LABEL, date(2024, 5, 1))

    assert "tags" not in body["queries"][0]


def test_query_body_times_are_13_digit_ints() -> None:
    body = build_query_body(SPECS["vscope.vm.net.rx"], LABEL, date(2024, 5, 1))

    assert type(body["start"]) is int
    assert type(body["end"]) is int
    assert len(str(body["start"])) == 13
    assert len(str(body["end"])) == 13


def test_query_body_ignores_time_of_datetime() -> None:
    from_datetime = build_query_body(SPECS["vscope.vm.net.rx"], LABEL, datetime(2024, 5, 1, 17, 45))

    assert from_datetime == build_query_body(SPECS["vscope.vm.net.rx"], LABEL, date(2024, 5, 1))


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("pcc-1_datacenter1|pcc-2_datacenter2", "'pcc-1_datacenter1|pcc-2_datacenter2'"),
        ("", "''"),
        ("pcc 1_datacenter1", "'pcc 1_datacenter1'"),
        ("pcc-1_datacenter*", "'pcc-1_datacenter*'"),
    ],
)
def test_query_body_rejects_invalid_label(label: str, shown: str) -> None:
    with pytest.raises(ValueError, match=r"^datacenter label ") as raised:
        build_query_body(SPECS["vscope.vm.net.rx"], label, date(2024, 5, 1))

    assert str(raised.value) == (
        f"datacenter label {shown} is not a valid OpenTSDB tag value: expected letters, "
        "digits, '-', '_', '.' or '/', for example 'pcc-37-187-228-180_datacenter869'"
    )


@pytest.mark.parametrize(
    ("day", "start_ms", "stop_ms"),
    [
        (date(1970, 1, 1), 0, 86_400_000),
        (date(2024, 5, 1), 1714521600000, 1714608000000),
        (date(2024, 10, 27), 1729987200000, 1730073600000),
    ],
)
def test_day_window_cases(day: date, start_ms: int, stop_ms: int) -> None:
    window = day_window(day)

    assert window == DayWindow(day=day, start_ms=start_ms, stop_ms=stop_ms)
    assert window.end_ms == stop_ms - 1


def test_describe_query_of_planned_body() -> None:
    body = build_query_body(SPECS["vscope.host.net.tx"], LABEL, date(2024, 5, 1))

    assert describe_query(body) == (
        "metric vscope.host.net.tx, datacenter pcc-37-187-228-180_datacenter869, "
        "from 2024-05-01T00:00:00.000Z to 2024-05-01T23:59:59.999Z"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "metric (none), from None to None"),
        (
            {"start": "1h-ago", "queries": "not a list"},
            "metric (none), from '1h-ago' to None",
        ),
        (
            {"start": 10**30, "end": True, "queries": [{"metric": "m", "filters": None}, 7]},
            "metric m, from 1000000000000000000000000000000 to True",
        ),
    ],
)
def test_describe_query_tolerates_odd_bodies(body: dict[str, object], expected: str) -> None:
    assert describe_query(body) == expected


def _literal(tag_key: str, value: str) -> dict[str, object]:
    return {"type": "literal_or", "tagk": tag_key, "filter": value, "groupBy": True}


def test_window_body_per_entity() -> None:
    window = sub_window(day_window(date(2024, 5, 1)), 1714521600000, 1714525200000)

    body = build_window_body(SPECS["vscope.vm.cpu.ready"], LABEL, window, ("vm-1", "vm-2"))

    assert body == {
        "start": 1714521600000,
        "end": 1714525199999,
        "msResolution": True,
        "queries": [
            {
                "metric": "vscope.vm.cpu.ready",
                "aggregator": "avg",
                "filters": [_datacenter_filter(), _literal("vm", entity)],
            }
            for entity in ("vm-1", "vm-2")
        ],
    }


def test_window_body_per_nic_entity() -> None:
    body = build_window_body(
        SPECS["vscope.host.net.tx"], LABEL, day_window(date(2024, 5, 1)), ("esx-1",), "5m-avg"
    )

    assert body["queries"] == [
        {
            "metric": "vscope.host.net.tx",
            "aggregator": "none",
            "filters": [_datacenter_filter(), _literal("host", "esx-1"), _wildcard("nicname")],
            "downsample": "5m-avg",
        }
    ]


def test_window_body_grouped_downsample() -> None:
    body = build_window_body(
        SPECS["vscope.vm.cpu.ready"], LABEL, day_window(date(2024, 5, 1)), None, "1h-max"
    )

    assert body["queries"] == [
        {
            "metric": "vscope.vm.cpu.ready",
            "aggregator": "avg",
            "filters": [_datacenter_filter(), _wildcard("vm")],
            "downsample": "1h-max",
        }
    ]


def test_window_body_rejects_bad_entities() -> None:
    spec = SPECS["vscope.vm.cpu.ready"]
    window = day_window(date(2024, 5, 1))

    with pytest.raises(ValueError, match="is empty") as empty:
        build_window_body(spec, LABEL, window, ())
    with pytest.raises(ValueError, match="is not a valid") as piped:
        build_window_body(spec, LABEL, window, ("vm-1|vm-2",))

    assert str(empty.value) == "entities is empty: expected at least one entity name, or None"
    assert str(piped.value).startswith("vm name 'vm-1|vm-2' is not a valid OpenTSDB tag value")


@pytest.mark.parametrize(
    ("entities", "expected"),
    [
        (("vm-7",), f"metric vscope.vm.cpu.ready, datacenter {LABEL}, vm vm-7, from "),
        (("vm-7", "vm-8"), f"metric vscope.vm.cpu.ready, datacenter {LABEL}, 2 entities, from "),
    ],
)
def test_describe_query_names_entities(entities: tuple[str, ...], expected: str) -> None:
    body = build_window_body(
        SPECS["vscope.vm.cpu.ready"], LABEL, day_window(date(2024, 5, 1)), entities
    )

    assert describe_query(body) == (
        expected + "2024-05-01T00:00:00.000Z to 2024-05-01T23:59:59.999Z"
    )
