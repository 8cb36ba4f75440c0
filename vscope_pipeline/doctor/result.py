"""The outcome of one doctor check, and the lines it prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: OK, WARN or FAIL, what was found, and the fix of a failure."""

    status: str
    name: str
    detail: str
    fix: str | None = None
    # True when the checks after this one cannot run, such as when APIv6 is unreachable.
    blocking: bool = False
    # Findings listed one per line under the first, such as each invalid setting.
    items: tuple[str, ...] = ()

    @classmethod
    def ok(cls, name: str, detail: str) -> CheckResult:
        return cls("OK", name, detail)

    @classmethod
    def warn(cls, name: str, detail: str, fix: str | None = None) -> CheckResult:
        return cls("WARN", name, detail, fix)

    @classmethod
    def fail(cls, name: str, detail: str, fix: str | None = None) -> CheckResult:
        return cls("FAIL", name, detail, fix)

    def lines(self) -> list[str]:
        out = [f"{self.status:<5} {self.name}: {self.detail}"]
        out += [f"      - {item}" for item in self.items]
        if self.fix:
            out.append(f"      fix: {self.fix}")
        return out
