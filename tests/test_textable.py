"""Text, CSV, JSON and Markdown rendering of query results."""

import csv
import datetime as dt
import io
import json
from decimal import Decimal

from vscope_pipeline.textable import format_csv, format_json, format_markdown, format_table


def test_numbers_right_aligned_and_nulls():
    text = format_table(["name", "rows"], [("vms", 60), ("hosts", None), ("filers", 12345)])
    assert text.splitlines() == [
        "name     rows",
        "------  -----",
        "vms        60",
        "hosts    NULL",
        "filers  12345",
    ]


def test_empty_rows_keep_header():
    assert format_table(["a"], []) == "a\n-"


def test_csv_header_quotes_and_nulls():
    rows = [
        ("a,b", 1.5, None, dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC)),
        ('say "hi"', float("nan"), dt.date(2026, 11, 19), None),
    ]

    text = format_csv(["name", "value", "day", "ts"], rows)

    assert text == (
        "name,value,day,ts\r\n"
        '"a,b",1.5,,2026-11-19T23:30:00+00:00\r\n'
        '"say ""hi""",nan,2026-11-19,\r\n'
    )


def test_csv_round_trips_through_csv_reader():
    text = format_csv(["a"], [("line\nbreak",), ({"unit": "GB", "value": 3000},)])

    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a"],
        ["line\nbreak"],
        ['{"unit": "GB", "value": 3000}'],
    ]


def test_json_types():
    rows = [
        (
            dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC),
            dt.date(2026, 11, 19),
            float("nan"),
            float("-inf"),
            Decimal("2.50"),
            {"unit": "GB", "value": 3000},
            [1, None],
            None,
        )
    ]
    columns = ["ts", "day", "nan", "inf", "dec", "size", "list", "null"]

    assert json.loads(format_json(columns, rows)) == [
        {
            "ts": "2026-11-19T23:30:00+00:00",
            "day": "2026-11-19",
            "nan": None,
            "inf": None,
            "dec": 2.5,
            "size": {"unit": "GB", "value": 3000},
            "list": [1, None],
            "null": None,
        }
    ]


def test_json_empty_is_empty_array():
    assert format_json(["a"], []) == "[]"


def test_markdown_aligns_and_escapes():
    text = format_markdown(["name", "rows"], [("a|b", 60), ("two\nlines", None)])

    assert text.splitlines() == [
        "| name | rows |",
        "| --- | ---: |",
        "| a\\|b | 60 |",
        "| two<br>lines | NULL |",
    ]


def test_markdown_empty_keeps_header():
    assert format_markdown(["a"], []) == "| a |\n| --- |"


def test_table_right_aligns_decimals():
    assert format_table(["n"], [(Decimal("2.5"),), (Decimal("10.25"),)]).splitlines() == [
        "    n",
        "-----",
        "  2.5",
        "10.25",
    ]


def test_table_writes_floats_out():
    rows = [(1126490000.5,), (3452.8,), (0.00123456,), (2.5e-7,), (0.0,), (1e16,), (-42.125,)]
    assert [line.strip() for line in format_table(["value"], rows).splitlines()[2:]] == [
        "1126490000",
        "3452.8",
        "0.00123456",
        "2.5e-07",
        "0",
        "1e+16",
        "-42.125",
    ]


def test_table_shows_nested_values_as_json():
    created = dt.datetime(2026, 12, 2, 2, 13, tzinfo=dt.UTC)
    rows = [({"value": 6000, "unit": "GB", "since": created}, [1, None])]
    assert format_table(["size", "list"], rows).splitlines()[2] == (
        '{"value": 6000, "unit": "GB", "since": "2026-12-02T02:13:00+00:00"}  [1, null]'
    )
