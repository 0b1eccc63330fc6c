"""Shards: which instance owns which station, and the MQTT filters of one shard. Pure.

A station belongs to shard `crc32(station id as UTF-8) mod N` (`zlib.crc32`, the IEEE 802.3 CRC-32
that `cksum -a crc32`, Go's `hash/crc32.ChecksumIEEE` and Java's `java.util.zip.CRC32` compute as
well), so the mapping needs no coordination, survives restarts, and any tool can tell where a station
lives. Adding a shard moves about 1/N of the stations; an HA pair is two instances of the same shard.

    shard_of("daoli-youyi-334", 3) == zlib.crc32(b"daoli-youyi-334") % 3

A shard subscribes only to its own stations' topics: a template's `{station}` level becomes each owned
station's id (`heat/{station}/{loop}/{quantity}` -> `heat/s1/+/+`, `heat/s2/+/+`, ...). A template
without a `{station}` level cannot be narrowed and keeps its filter; its other stations' messages are
then rejected as `unknown_station` (counted, never stored).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from stationmon.domain.topics import CompiledTemplate, filter_matches, shared_filter

__all__ = ["ShardSpec", "narrowed_filters", "owned", "parse_shard", "shard_of"]

_SPEC_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 4096


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Shard `index` of `count` (0-based); `ShardSpec()` is the single, unsharded instance."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"the number of shards must be 1..{MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard must be 0..{self.count - 1} for {self.count} shards, got {self.index}")

    @property
    def sharded(self) -> bool:
        """Whether there is more than one shard."""
        return self.count > 1

    def owns(self, station_id: str) -> bool:
        """Whether this shard owns the station."""
        return shard_of(station_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardSpec:
    """`"i/N"` -> ShardSpec(i, N); ValueError with a readable reason otherwise."""
    m = _SPEC_RE.match(text)
    if m is None:
        raise ValueError(f"expected i/N such as 0/3, got {text!r}")
    return ShardSpec(int(m.group(1)), int(m.group(2)))


def shard_of(station_id: str, count: int) -> int:
    """The shard (0..count-1) that owns a station: crc32 of its UTF-8 id, mod count."""
    return zlib.crc32(station_id.encode("utf-8")) % count


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


def owned(items: Iterable[T], spec: ShardSpec) -> list[T]:
    """The stations (anything with an `id`) this shard owns, in their order."""
    return [s for s in items if spec.owns(s.id)]


def narrowed_filters(
    templates: Sequence[CompiledTemplate],
    point_topics: Iterable[str],
    station_ids: Sequence[str],
    *,
    point_qos: int = 1,
    share_group: str = "",
) -> list[tuple[str, int]]:
    """(filter, qos) for a shard: each template once per owned station, plus its stations' point topics.

    A template's `{station}` level is replaced by each station id; a template without one keeps its
    filter. Point topics come after, unless an identical filter is there already.
    """
    out: dict[str, int] = {}
    for t in templates:
        level = next((i for name, i in t.captures if name == "station"), None)
        if level is None:
            out[t.filter] = max(out.get(t.filter, 0), t.qos)
            continue
        parts = t.filter.split("/")
        for sid in station_ids:
            f = "/".join([*parts[:level], sid, *parts[level + 1 :]])
            out[f] = max(out.get(f, 0), t.qos)
    for topic in point_topics:
        if not any(filter_matches(f, topic) and qos >= point_qos for f, qos in out.items()):
            out[topic] = max(out.get(topic, 0), point_qos)
    return [(shared_filter(f, share_group), qos) for f, qos in out.items()]
