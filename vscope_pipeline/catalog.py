"""The vScope metric catalogue: every metric the pipeline backfills, with its labels and unit.

The 20 built-in metrics are the ones OVHcloud documents in its vScope API guide (1 filer, 6 host,
13 VM). Units for network and disk rates are not stated by OVHcloud; KB/s is the unit the vScope
web page shows and is recorded here as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

EntityKind = Literal["vm", "host", "filer"]

ENTITY_KINDS: tuple[EntityKind, ...] = ("vm", "host", "filer")

# The OpenTSDB tag that names the entity a series belongs to, per entity kind.
ENTITY_LABEL: dict[EntityKind, str] = {"vm": "vm", "host": "host", "filer": "datastore"}

NIC_LABEL = "nicname"
DATACENTER_LABEL = "datacenter"


@dataclass(frozen=True)
class MetricSpec:
    """One vScope metric as stored in OpenTSDB."""

    name: str
    entity_kind: EntityKind
    unit: str
    description: str
    per_nic: bool = False
    # Inclusive bounds of a plausible value; None means unbounded on that side.
    min_value: float | None = 0.0
    max_value: float | None = None
    documented: bool = True

    @property
    def entity_label(self) -> str:
        return ENTITY_LABEL[self.entity_kind]

    @property
    def label_keys(self) -> tuple[str, ...]:
        keys = (DATACENTER_LABEL, self.entity_label)
        return (*keys, NIC_LABEL) if self.per_nic else keys


def _percent(name: str, kind: EntityKind, what: str) -> MetricSpec:
    return MetricSpec(name, kind, "%", what, max_value=100.0)


BUILTIN_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("vscope.filer.datastore.diskspace.used", "filer", "kB", "Datastore space used"),
    _percent("vscope.host.cpu.usage.perc", "host", "Host CPU usage"),
    _percent("vscope.host.mem.usage.perc", "host", "Host memory usage"),
    MetricSpec("vscope.host.net.tx", "host", "KB/s", "Host NIC transmit rate", per_nic=True),
    MetricSpec("vscope.host.net.rx", "host", "KB/s", "Host NIC receive rate", per_nic=True),
    MetricSpec(
        "vscope.host.net.packetstx", "host", "packets", "Host NIC packets sent", per_nic=True
    ),
    MetricSpec(
        "vscope.host.net.packetsrx", "host", "packets", "Host NIC packets received", per_nic=True
    ),
    _percent("vscope.vm.cpu.usage.perc", "vm", "VM CPU usage"),
    _percent("vscope.vm.mem.usage.perc", "vm", "VM memory usage"),
    MetricSpec("vscope.vm.cpu.ready", "vm", "ms", "VM CPU ready time"),
    MetricSpec("vscope.vm.net.rx", "vm", "KB/s", "VM network receive rate"),
    MetricSpec("vscope.vm.net.tx", "vm", "KB/s", "VM network transmit rate"),
    MetricSpec("vscope.vm.net.packetsrx", "vm", "packets", "VM network packets received"),
    MetricSpec("vscope.vm.net.packetstx", "vm", "packets", "VM network packets sent"),
    MetricSpec("vscope.vm.disk.io.read", "vm", "IO/s", "VM disk read operations per second"),
    MetricSpec("vscope.vm.disk.io.write", "vm", "IO/s", "VM disk write operations per second"),
    MetricSpec("vscope.vm.disk.bandwidth.read", "vm", "KB/s", "VM disk read bandwidth"),
    MetricSpec("vscope.vm.disk.bandwidth.write", "vm", "KB/s", "VM disk write bandwidth"),
    MetricSpec("vscope.vm.disk.latency.read", "vm", "ms", "VM disk read latency"),
    MetricSpec("vscope.vm.disk.latency.write", "vm", "ms", "VM disk write latency"),
)

# Dot-separated words of lower-case letters, digits and '_', as every vScope metric is named.
# The name becomes a folder name in the lake, so '/', '..' and spaces must never pass.
_EXTRA_METRIC = re.compile(r"vscope\.(vm|host|filer)(\.[a-z0-9_]+)+")
_MAX_UNIT_CHARS = 16


class CatalogError(ValueError):
    """An extra metric name that the catalogue cannot accept."""


def parse_extra_metric(text: str) -> MetricSpec:
    """Build the spec of an undocumented metric from `name` or `name:unit`.

    The entity kind comes from the name's second part (`vscope.vm.mem.tps` is a VM metric).
    """
    name, _, unit = text.strip().partition(":")
    if not _EXTRA_METRIC.fullmatch(name):
        raise CatalogError(
            f"extra metric {name!r} is not a vScope metric name: expected "
            "'vscope.<vm|host|filer>.<name>[:unit]' with dot-separated words of lower-case "
            "letters, digits and '_', for example 'vscope.vm.mem.tps:MB'"
        )
    unit = unit.strip()
    if len(unit) > _MAX_UNIT_CHARS or not unit.isprintable():
        raise CatalogError(
            f"extra metric {name!r} has unit {unit!r}: expected at most {_MAX_UNIT_CHARS} "
            "printable characters, for example 'MB' or 'KB/s'"
        )
    kind: EntityKind = name.split(".")[1]  # type: ignore[assignment]
    return MetricSpec(
        name,
        kind,
        unit or "unknown",
        "Undocumented vScope metric added by configuration",
        min_value=None,
        documented=False,
    )


def build_catalog(extra: tuple[MetricSpec, ...] = ()) -> tuple[MetricSpec, ...]:
    """Return the built-in metrics followed by the extra ones, without duplicate names."""
    known = {spec.name for spec in BUILTIN_METRICS}
    added = tuple(spec for spec in extra if spec.name not in known)
    return BUILTIN_METRICS + tuple(dict.fromkeys(added))


def metrics_of_kind(catalog: tuple[MetricSpec, ...], kind: EntityKind) -> tuple[MetricSpec, ...]:
    return tuple(spec for spec in catalog if spec.entity_kind == kind)


def datacenter_label(service_name: str, datacenter_id: int) -> str:
    """Return the `datacenter` tag value vScope writes for a datacenter.

    OVHcloud's guide shows `pcc-37-187-228-180_datacenter869` for service
    `pcc-37-187-228-180`. NOTE: that the number is the APIv6 `datacenterId` is inferred from
    that example, not documented.
    """
    return f"{service_name}_datacenter{datacenter_id}"
