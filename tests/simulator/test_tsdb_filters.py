"""OpenTSDB tag filters: matching per type, the tags map shortcut, selection and grouping."""

from __future__ import annotations

import pytest

from vscope_pipeline.simulator.tsdb_errors import InvalidQueryError
from vscope_pipeline.simulator.tsdb_filters import (
    build_filter,
    group_by_keys,
    group_series,
    select_series,
    tags_to_filters,
)


@pytest.mark.parametrize(
    ("filter_type", "expression", "value", "expected"),
    [
        ("literal_or", "web01", "web01", True),
        ("literal_or", "web01", "WEB01", False),
        ("literal_or", "web01|web02", "web02", True),
        ("literal_or", "web01|web02", "web03", False),
        ("iliteral_or", "WEB01|web02", "web01", True),
        ("iliteral_or", "web01", "Web01", True),
        ("not_literal_or", "web01|web02", "web03", True),
        ("not_literal_or", "web01|web02", "web01", False),
        ("not_literal_or", "web01", "WEB01", True),
        ("not_iliteral_or", "web01", "WEB01", False),
        ("not_iliteral_or", "web01", "web02", True),
        ("wildcard", "*", "anything", True),
        ("wildcard", "web*", "web01", True),
        ("wildcard", "web*", "myweb01", False),
        ("wildcard", "web*", "WEB01", False),
        ("wildcard", "*01", "web01", True),
        ("wildcard", "*01", "web02", False),
        ("wildcard", "*eb*", "web01", True),
        ("wildcard", "w*1", "web01", True),
        ("wildcard", "w*1", "web02", False),
        # Without a leading or trailing *, OpenTSDB does not anchor the pattern.
        ("wildcard", "w*1", "xweb01y", True),
        ("iwildcard", "WEB*", "web01", True),
        ("iwildcard", "*EB0*", "Web01", True),
        ("regexp", "web", "myweb01", True),
        ("regexp", "^web", "myweb01", False),
        ("regexp", "^web0[12]$", "web02", True),
        ("regexp", "^web0[12]$", "web03", False),
    ],
)
def test_filter_matching(filter_type: str, expression: str, value: str, expected: bool) -> None:
    tag_filter = build_filter(filter_type, "host", expression)
    assert tag_filter.matches(value) is expected


@pytest.mark.parametrize(
    ("filter_type", "tagk", "expression", "message"),
    [
        (None, "host", "web01", "The filter type cannot be null or empty"),
        ("literal_or", "", "web01", "The tagk cannot be null or empty"),
        ("not_key", "host", "web01", "Could not find a tag value filter of the type: not_key"),
        (
            "Literal_Or",
            "host",
            "web01",
            "Could not find a tag value filter of the type: Literal_Or",
        ),
        ("literal_or", "host", None, "Filter cannot be null or empty"),
        ("literal_or", "host", "|", "Filter must contain more than just a pipe"),
        ("wildcard", "host", "web01", "Filter must contain an asterisk"),
        (
            "regexp",
            "host",
            "(web",
            "Invalid regular expression '(web': missing ), unterminated subpattern at position 0",
        ),
    ],
)
def test_build_filter_errors(
    filter_type: str | None, tagk: str, expression: str | None, message: str
) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        build_filter(filter_type, tagk, expression)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "filter_type", "expression", "case_insensitive"),
    [
        ("*", "wildcard", "*", True),
        ("web01", "literal_or", "web01", False),
        ("web01|web02", "literal_or", "web01|web02", False),
        # A value with * is a case-insensitive wildcard that OpenTSDB still calls `wildcard`.
        ("Web*", "wildcard", "Web*", True),
        ("REGEXP(^web)", "regexp", "^web", False),
        ("iliteral_or(WEB01)", "iliteral_or", "WEB01", True),
    ],
)
def test_tags_map_conversion(
    value: str, filter_type: str, expression: str, case_insensitive: bool
) -> None:
    (tag_filter,) = tags_to_filters({"host": value})
    assert tag_filter.type == filter_type
    assert tag_filter.tagk == "host"
    assert tag_filter.filter == expression
    assert tag_filter.group_by is True
    assert tag_filter.case_insensitive is case_insensitive


def test_tags_map_wildcard_shortcut_ignores_case() -> None:
    (tag_filter,) = tags_to_filters({"host": "Web*"})
    assert tag_filter.matches("WEB01") is True
    assert tag_filter.matches("db01") is False


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"host": ""}, "Filter cannot be null or empty"),
        ({"host": None}, "Filter cannot be null or empty"),
        ({"": "web01"}, "Tagk cannot be null or empty"),
        ({"host": "regexp(^web"}, "Filter must end with a ')': regexp(^web"),
        ({"host": "bogus(web)"}, "Could not find a tag value filter of the type: bogus"),
    ],
)
def test_tags_map_errors(tags: dict[str, str | None], message: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        tags_to_filters(tags)
    assert str(caught.value) == message


def test_literals_to_resolve_only_for_literal_or() -> None:
    assert build_filter("literal_or", "host", "web01|web02|").literals_to_resolve() == (
        "web01",
        "web02",
    )
    assert build_filter("iliteral_or", "host", "web01").literals_to_resolve() == ()
    assert build_filter("not_literal_or", "host", "web01").literals_to_resolve() == ()
    assert build_filter("wildcard", "host", "web*").literals_to_resolve() == ()


def test_filter_identity_ignores_group_by() -> None:
    grouped = build_filter("literal_or", "host", "a|b", True)
    plain = build_filter("literal_or", "host", "b|a", False)
    other_type = build_filter("iliteral_or", "host", "a|b", True)
    assert grouped.identity == plain.identity
    assert grouped.identity != other_type.identity


SERIES = [
    {"dc": "dc1", "host": "web01", "nic": "eth0"},
    {"dc": "dc1", "host": "web01", "nic": "eth1"},
    {"dc": "dc1", "host": "web02"},
    {"dc": "dc2", "host": "db01", "nic": "eth0"},
]


@pytest.mark.parametrize(
    ("filters", "explicit_tags", "expected"),
    [
        ([], False, [0, 1, 2, 3]),
        ([build_filter("literal_or", "dc", "dc1")], False, [0, 1, 2]),
        # Every filtered key must be present, even for a negated filter.
        ([build_filter("not_literal_or", "nic", "eth1")], False, [0, 3]),
        # Filters are ANDed, also on one key.
        (
            [
                build_filter("wildcard", "host", "web*"),
                build_filter("not_literal_or", "host", "web02"),
            ],
            False,
            [0, 1],
        ),
        ([build_filter("wildcard", "nic", "*")], False, [0, 1, 3]),
        # explicitTags: the series' keys must be exactly the filtered keys.
        (
            [build_filter("wildcard", "dc", "*"), build_filter("wildcard", "host", "*")],
            True,
            [2],
        ),
        ([], True, []),
    ],
)
def test_select_series(filters: list, explicit_tags: bool, expected: list[int]) -> None:
    assert select_series(SERIES, filters, explicit_tags) == expected


def test_group_series_by_group_by_keys() -> None:
    filters = [
        build_filter("wildcard", "host", "*", True),
        build_filter("literal_or", "dc", "dc1|dc2", False),
    ]
    keys = group_by_keys(filters)
    assert keys == ("host",)
    assert group_series([0, 1, 2, 3], SERIES, keys) == [[0, 1], [2], [3]]


def test_group_series_without_keys_is_one_group() -> None:
    assert group_series([0, 2, 3], SERIES, ()) == [[0, 2, 3]]
