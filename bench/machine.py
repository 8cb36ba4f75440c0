"""Describe the machine and software a benchmark ran on, for the benchmark record."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

LIBRARIES = ("orjson", "msgspec", "numpy", "pyarrow", "pandas", "requests")


def describe_machine() -> dict[str, str]:
    """Return the date, CPU, core count, RAM, Python and library versions, as display text."""
    return {
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_model(),
        "nproc": str(os.cpu_count() or "unknown"),
        "usable cores": str(len(os.sched_getaffinity(0))),
        "ram": _total_ram(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **{name: _version(name) for name in LIBRARIES},
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _total_ram() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
