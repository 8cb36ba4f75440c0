"""OpenTSDB 2.x tag filters: construction, the `tags` map shortcut, series selection, grouping.

Matching follows the filter classes of OpenTSDB 2.4 (`net.opentsdb.query.filter`), quirks
included: a `wildcard` without a leading or trailing `*` is not anchored, and a `regexp` is an
unanchored search. Construction errors carry OpenTSDB's messages; the request parser turns
them into "Unable to parse the given JSON" responses, as OpenTSDB does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vscope_pipeline.simulator.tsdb_errors import InvalidQueryError

# Registered by default in OpenTSDB 2.4. `not_key` exists there as a class but is not
# registered, so it is rejected like any unknown type.
FILTER_TYPES = (
    "literal_or",
    "iliteral_or",
    "not_literal_or",
    "not_iliteral_or",
    "wildcard",
    "iwildcard",
    "regexp",
)

# OpenTSDB's default `tsd.query.filter.expansion_limit`.
FILTER_EXPANSION_LIMIT = 4096

Tags = Mapping[str, str]


@dataclass(frozen=True)
class TagFilter:
    """One tag filter of a sub-query, as `{type, tagk, filter, groupBy}` in the JSON body.

    `case_insensitive` is set by the type (`iliteral_or`, `iwildcard`, `not_iliteral_or`),
    and also for the case-insensitive `wildcard` that the `tags` map shortcut `web*` creates,
    which OpenTSDB still reports as type `wildcard`.
    """

    type: str
    tagk: str
    filter: str
    group_by: bool
    case_insensitive: bool
    _match: Callable[[str], bool] = field(repr=False, compare=False)
    # What OpenTSDB compares to merge duplicate sub-queries; group_by is not part of it.
    identity: tuple[object, ...] = field(repr=False, compare=False)

    def matches(self, value: str) -> bool:
        """Return whether a present tag value passes this filter."""
        return self._match(value)

    def literals_to_resolve(self) -> tuple[str, ...]:
        """Return the tag values OpenTSDB looks up in its UID table before scanning.

        Only the case-sensitive `literal_or` resolves its values, so only it can fail with
        "No such name for 'tagv'", and only up to `tsd.query.filter.expansion_limit` values.
        """
        if self.type != "literal_or":
            return ()
        literals = tuple(dict.fromkeys(_java_split_pipes(self.filter)))
        return literals if len(literals) <= FILTER_EXPANSION_LIMIT else ()

    def describe(self) -> str:
        """Return a one-line description in the style of OpenTSDB's `TagVFilter.toString`."""
        return (
            f"filter_name={self.type}, tagk={self.tagk}, group_by={_java_bool(self.group_by)}, "
            f"filter={self.filter}, case={_java_bool(self.case_insensitive)}"
        )

    def to_json(self) -> dict[str, object]:
        """Return the filter as OpenTSDB echoes it in a `showQuery` response."""
        return {
            "tagk": self.tagk,
            "filter": self.filter,
            "group_by": self.group_by,
            "type": self.type,
        }


def build_filter(
    filter_type: str | None,
    tagk: str | None,
    expression: str | None,
    group_by: bool = False,
    *,
    case_insensitive_wildcard: bool = False,
) -> TagFilter:
    """Build a filter from its JSON fields, raising InvalidQueryError with OpenTSDB's message.

    The type name is case-sensitive, as in a JSON body. `case_insensitive_wildcard` is only
    for the `tags` map shortcut.
    """
    if not filter_type:
        raise InvalidQueryError("The filter type cannot be null or empty")
    if not tagk:
        raise InvalidQueryError("The tagk cannot be null or empty")
    if filter_type not in FILTER_TYPES:
        raise InvalidQueryError(f"Could not find a tag value filter of the type: {filter_type}")
    if not expression:
        raise InvalidQueryError("Filter cannot be null or empty")

    case_insensitive = filter_type.startswith(("i", "not_i")) or case_insensitive_wildcard
    if filter_type.endswith("literal_or"):
        match, identity = _literal_matcher(expression, case_insensitive, filter_type)
    elif filter_type.endswith("wildcard"):
        match, identity = _wildcard_matcher(expression, case_insensitive)
    else:
        match, identity = _regexp_matcher(expression)
    return TagFilter(
        type=filter_type,
        tagk=tagk,
        filter=expression,
        group_by=group_by,
        case_insensitive=case_insensitive,
        _match=match,
        identity=(tagk, *identity),
    )


def tags_to_filters(tags: Mapping[str, str | None]) -> list[TagFilter]:
    """Convert the deprecated `tags` map of a sub-query into group-by filters.

    `*` becomes `wildcard(*)`, `type(expr)` names a filter type (lower-cased), any other value
    containing `*` becomes a case-insensitive wildcard and the rest becomes `literal_or`,
    whose `a|b` form yields one group per value. A filter equal to an earlier one is dropped.
    """
    filters: list[TagFilter] = []
    for tagk, value in tags.items():
        new_filter = _tag_value_to_filter(tagk, value)
        if all(new_filter.identity != existing.identity for existing in filters):
            filters.append(new_filter)
    return filters


def _tag_value_to_filter(tagk: str, value: str | None) -> TagFilter:
    if not tagk:
        raise InvalidQueryError("Tagk cannot be null or empty")
    if not value:
        raise InvalidQueryError("Filter cannot be null or empty")
    if value == "*":
        return build_filter("wildcard", tagk, "*", True, case_insensitive_wildcard=True)
    paren = value.find("(")
    if paren > -1:
        if not value.endswith(")"):
            raise InvalidQueryError(f"Filter must end with a ')': {value}")
        expression = value[paren + 1 : -1]
        return build_filter(value[:paren].lower(), tagk, expression, True)
    if "*" in value:
        return build_filter("wildcard", tagk, value, True, case_insensitive_wildcard=True)
    return build_filter("literal_or", tagk, value, True)


def select_series(
    series_tags: Sequence[Tags], filters: Sequence[TagFilter], explicit_tags: bool
) -> list[int]:
    """Return the positions of the series that a sub-query's filters select.

    Every tag key named by a filter must be present (OpenTSDB's row-key regex demands it,
    even for `not_literal_or`), and every filter must match. With `explicit_tags` the
    series' tag keys must be exactly the filtered keys.
    """
    filtered_keys = {tag_filter.tagk for tag_filter in filters}
    selected = []
    for position, tags in enumerate(series_tags):
        if explicit_tags and set(tags) != filtered_keys:
            continue
        if not filtered_keys.issubset(tags):
            continue
        if all(tag_filter.matches(tags[tag_filter.tagk]) for tag_filter in filters):
            selected.append(position)
    return selected


def group_by_keys(filters: Sequence[TagFilter]) -> tuple[str, ...]:
    """Return the tag keys that have at least one group-by filter, in filter order."""
    return tuple(dict.fromkeys(f.tagk for f in filters if f.group_by))


def group_series(
    positions: Sequence[int], series_tags: Sequence[Tags], keys: Sequence[str]
) -> list[list[int]]:
    """Split selected series into groups with equal values of the group-by keys.

    Groups are ordered by their first series; with no keys all series form one group.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for position in positions:
        tags = series_tags[position]
        groups.setdefault(tuple(tags[key] for key in keys), []).append(position)
    return list(groups.values())


def _literal_matcher(
    expression: str, case_insensitive: bool, filter_type: str
) -> tuple[Callable[[str], bool], tuple[object, ...]]:
    if expression == "|":
        raise InvalidQueryError("Filter must contain more than just a pipe")
    literals = _java_split_pipes(expression)
    if case_insensitive:
        literals = [literal.lower() for literal in literals]
    literal_set = frozenset(literals)
    negated = filter_type.startswith("not_")

    def match(value: str) -> bool:
        found = (value.lower() if case_insensitive else value) in literal_set
        return found != negated

    return match, (filter_type, literal_set)


def _wildcard_matcher(
    expression: str, case_insensitive: bool
) -> tuple[Callable[[str], bool], tuple[object, ...]]:
    pattern = expression.lower() if case_insensitive else expression
    if "*" not in pattern:
        raise InvalidQueryError("Filter must contain an asterisk")

    # Strip the leading and trailing asterisks, but keep one when nothing else is left.
    has_suffix_match = pattern.startswith("*")
    while has_suffix_match and pattern.startswith("*") and len(pattern) >= 2:
        pattern = pattern[1:]
    has_prefix_match = pattern.endswith("*")
    while has_prefix_match and pattern.endswith("*") and len(pattern) >= 2:
        pattern = pattern[:-1]
    components = pattern.split("*") if pattern.find("*") > 0 else [pattern]
    match_all = components == ["*"]

    def match(value: str) -> bool:
        if match_all:
            return True
        text = value.lower() if case_insensitive else value
        if has_suffix_match and not has_prefix_match and not text.endswith(components[-1]):
            return False
        if has_prefix_match and not has_suffix_match and not text.startswith(components[0]):
            return False
        # OpenTSDB advances the search start by the component length only, not past the
        # match, so the components need not occur one after the other.
        start = 0
        for component in components:
            if component and text.find(component, start) < 0:
                return False
            start += len(component)
        return True

    return match, ("wildcard", tuple(components), case_insensitive)


def _regexp_matcher(expression: str) -> tuple[Callable[[str], bool], tuple[object, ...]]:
    # NOTE: Python's `re` replaces java.util.regex. The common syntax is the same, but
    # Java-only constructs (possessive quantifiers, \p{javaLowerCase}) are rejected here.
    try:
        pattern = re.compile(expression)
    except re.error as error:
        raise InvalidQueryError(f"Invalid regular expression {expression!r}: {error}") from error

    def match(value: str) -> bool:
        return pattern.search(value) is not None

    return match, ("regexp", expression)


def _java_split_pipes(expression: str) -> list[str]:
    """Split on `|` like Java's String.split, which drops trailing empty strings."""
    parts = expression.split("|")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _java_bool(value: bool) -> str:
    return "true" if value else "false"
