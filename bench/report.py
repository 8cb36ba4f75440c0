"""Figures of a benchmark run, printed as a text table or as Markdown for the record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vscope_pipeline.textable import format_table


@dataclass(frozen=True)
class Figure:
    """One measured figure. `met` is None for a figure without a target."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "-"
        return "yes" if self.met else "NO"


def render_text(figures: Sequence[Figure]) -> str:
    return format_table(
        ["figure", "value", "target", "met"],
        [(figure.name, figure.value, figure.target or "-", figure.verdict) for figure in figures],
    )


def render_markdown(figures: Sequence[Figure], machine: Mapping[str, str]) -> str:
    lines = ["| figure | value | target | met |", "|---|---:|---|---|"]
    lines += [
        f"| {figure.name} | {figure.value} | {figure.target or '-'} | {figure.verdict} |"
        for figure in figures
    ]
    lines += ["", "| machine | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in machine.items()]
    return "\n".join(lines)


def rate(points: int, seconds: float) -> str:
    """Format a throughput in millions of points per second."""
    return f"{points / seconds / 1e6:.2f} M points/s ({seconds:.2f} s)"
