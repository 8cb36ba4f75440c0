"""The access rules the pipeline needs, and how a consumer key's rules are matched."""

from __future__ import annotations

import pytest

from vscope_pipeline.ovh.access_rules import (
    REQUIRED_ACCESS_RULES,
    missing_access_rules,
    rule_allows,
)


@pytest.mark.parametrize(
    ("rule", "call", "allowed"),
    [
        (("GET", "/*"), ("GET", "/dedicatedCloud/pcc-1"), True),
        (("GET", "/*"), ("POST", "/dedicatedCloud/pcc-1"), False),
        (("GET", "/dedicatedCloud"), ("GET", "/dedicatedCloud/pcc-1"), False),
        (("GET", "/dedicatedCloud/*"), ("GET", "/dedicatedCloud/pcc-1/datacenter/1/vm/1"), True),
        (("POST", "/dedicatedCloud/*/user/*/metricsToken"), ("POST", "/a/b"), False),
    ],
)
def test_rule_allows(rule: tuple[str, str], call: tuple[str, str], allowed: bool) -> None:
    assert rule_allows(*rule, *call) is allowed


def test_recursive_read_write_rules_cover_all() -> None:
    rules = [(method, "/*") for method in ("GET", "POST", "PUT", "DELETE")]
    assert missing_access_rules(rules) == []


def test_read_only_key_misses_token_rules() -> None:
    missing = missing_access_rules([("GET", "/dedicatedCloud"), ("GET", "/dedicatedCloud/*")])
    assert [rule.text for rule in missing] == [
        "POST /dedicatedCloud/*/user/*/metricsToken",
        "POST /dedicatedCloud/*/user/*/getVscopeMetricsToken",
    ]


def test_required_rules_allow_their_examples() -> None:
    for rule in REQUIRED_ACCESS_RULES:
        assert rule_allows(rule.method, rule.path, rule.method, rule.example_path), rule.text
    assert [rule.text for rule in REQUIRED_ACCESS_RULES if not rule.optional] == [
        "GET /dedicatedCloud",
        "GET /dedicatedCloud/*",
        "POST /dedicatedCloud/*/user/*/metricsToken",
    ]
