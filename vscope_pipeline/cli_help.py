"""The help pages of the `vscope-pipeline` commands: descriptions, examples and exit codes.

Every command uses the same exit codes: 0 when it did its work, 1 when a run or a check
failed, 2 for a usage or configuration error found before anything was written.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

# Width that descriptions and exit codes are wrapped to, so they fit an 80-column terminal.
HELP_WIDTH = 79

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

USAGE_ERROR = (
    "usage or configuration error: an invalid option, argument or setting; nothing was written"
)


def exit_codes(failed: str) -> str:
    """Return the exit-code section of a help page; `failed` describes exit code 1."""
    rows = [(EXIT_OK, "success"), (EXIT_FAILED, failed), (EXIT_USAGE, USAGE_ERROR)]
    lines = [
        textwrap.fill(text, HELP_WIDTH, initial_indent=f"  {code}  ", subsequent_indent=" " * 5)
        for code, text in rows
    ]
    return "\n".join(["exit codes:", *lines])


def command_help(
    summary: str, description: str, examples: list[str], failed: str
) -> dict[str, Any]:
    """Return the `add_parser` keywords of a command: one-line help, description, epilog.

    The epilog lists `examples`, one command line each, then the exit codes.
    """
    listed = "\n".join(f"  {example}" for example in examples)
    return {
        "help": summary,
        "description": textwrap.fill(description, HELP_WIDTH),
        "epilog": f"example{'s' * (len(examples) > 1)}:\n{listed}\n\n{exit_codes(failed)}",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
