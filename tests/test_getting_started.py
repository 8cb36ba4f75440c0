"""docs/getting-started.md lists the access rules and key pages the pipeline really needs."""

import re
from pathlib import Path

import ovh.client

from vscope_pipeline.ovh.access_rules import REQUIRED_ACCESS_RULES

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"

RULE_ROW = re.compile(r"^\| `(GET|POST|PUT|DELETE)` \| `([^`]+)` \| (.+) \|$", re.MULTILINE)
TOKEN_PAGE_ROW = re.compile(
    r"^\| [^|]+ \| `([a-z-]+)` \| (https://\S+/createToken/) \|$", re.MULTILINE
)


def test_guide_lists_exactly_required_rules():
    rows = RULE_ROW.findall(GUIDE.read_text(encoding="utf-8"))

    assert [(method, path) for method, path, _ in rows] == [
        (rule.method, rule.path) for rule in REQUIRED_ACCESS_RULES
    ]
    for (_, path, purpose), rule in zip(rows, REQUIRED_ACCESS_RULES, strict=True):
        assert purpose.startswith("optional:") is rule.optional, path


def test_guide_token_pages_match_endpoints():
    pages = dict(TOKEN_PAGE_ROW.findall(GUIDE.read_text(encoding="utf-8")))

    assert sorted(pages) == ["ovh-ca", "ovh-eu", "ovh-us"]
    for endpoint, page in pages.items():
        api_root = ovh.client.ENDPOINTS[endpoint].removesuffix("/1.0")
        assert page == f"{api_root}/createToken/", endpoint
