"""The READMEs list the same access rules as the code that doctor checks them with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vscope_pipeline.ovh.access_rules import REQUIRED_ACCESS_RULES

REPOSITORY = Path(__file__).resolve().parents[2]
RULE_ROW = re.compile(r"^\| `(GET|POST|PUT|DELETE)` \| `(/[^`]*)` \|", re.MULTILINE)
EXIT_ROW = re.compile(r"^\| ([0-9]) \| ", re.MULTILINE)


@pytest.mark.parametrize("readme", ["README.md", "README.fr.md"])
def test_readme_access_rules_match_code(readme: str) -> None:
    text = (REPOSITORY / readme).read_text(encoding="utf-8")
    assert RULE_ROW.findall(text) == [(rule.method, rule.path) for rule in REQUIRED_ACCESS_RULES]


@pytest.mark.parametrize("readme", ["README.md", "README.fr.md"])
def test_readme_lists_exit_codes(readme: str) -> None:
    text = (REPOSITORY / readme).read_text(encoding="utf-8")
    assert EXIT_ROW.findall(text) == ["0", "1", "2"]
