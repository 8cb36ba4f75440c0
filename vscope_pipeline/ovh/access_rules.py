"""The APIv6 access rules that the pipeline's consumer key needs, and how a rule matches a call.

A consumer key carries rules `{"method": "GET", "path": "/dedicatedCloud/*"}`. The path is
relative to the API root (no `/1.0`), and `*` matches any run of characters, slashes
included, as python-ovh's `add_recursive_rules` relies on. `vscope-pipeline doctor` checks a
key's rules against `REQUIRED_ACCESS_RULES`, and the README lists the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RequiredAccessRule:
    """One access rule the pipeline needs: method, rule path, an example call and its purpose.

    `example_path` is a call the rule must allow, used to test a key's rules. `optional` marks
    a rule that only serves as a fallback, so a key without it still works on most accounts.
    """

    method: str
    path: str
    example_path: str
    purpose: str
    optional: bool = False

    @property
    def text(self) -> str:
        """The rule as OVH writes it: `GET /dedicatedCloud/*`."""
        return f"{self.method} {self.path}"


REQUIRED_ACCESS_RULES: tuple[RequiredAccessRule, ...] = (
    RequiredAccessRule(
        "GET",
        "/dedicatedCloud",
        "/dedicatedCloud",
        "list the dedicatedCloud services",
    ),
    RequiredAccessRule(
        "GET",
        "/dedicatedCloud/*",
        "/dedicatedCloud/pcc-1/datacenter/1/vm/1",
        "read the inventory: services, datacenters, datastores, hosts, VMs and users",
    ),
    RequiredAccessRule(
        "POST",
        "/dedicatedCloud/*/user/*/metricsToken",
        "/dedicatedCloud/pcc-1/user/1/metricsToken",
        "obtain the vScope metrics token",
    ),
    RequiredAccessRule(
        "POST",
        "/dedicatedCloud/*/user/*/getVscopeMetricsToken",
        "/dedicatedCloud/pcc-1/user/1/getVscopeMetricsToken",
        "obtain the vScope metrics token on older accounts, when metricsToken is missing",
        optional=True,
    ),
)


def rule_allows(rule_method: str, rule_path: str, method: str, path: str) -> bool:
    """Return True when the rule `rule_method rule_path` allows `method` on the API path `path`."""
    if method.upper() != rule_method.upper():
        return False
    pattern = ".*".join(re.escape(part) for part in rule_path.split("*"))
    return re.fullmatch(pattern, path) is not None


def missing_access_rules(
    rules: Iterable[tuple[str, str]],
    required: Iterable[RequiredAccessRule] = REQUIRED_ACCESS_RULES,
) -> list[RequiredAccessRule]:
    """Return the required rules whose example call none of `rules` (method, path) allows."""
    granted = list(rules)
    return [
        need
        for need in required
        if not any(
            rule_allows(method, path, need.method, need.example_path) for method, path in granted
        )
    ]
