"""`stationmon check-config -c FILE`: validate a config and print what it describes.

The summary: stations, loops, points, the Modbus read plan, and the defaults applied where a user may
not expect them; with a shard (`--shard I/N`, `STATIONMON_SHARD` or `[cluster]`) only what that shard
owns, and the MQTT filters it subscribes to. Secrets whose variable is not set (or whose file cannot be
read) are warnings on stderr, `warning: FILE: key.path: message`, so a config can be checked where its
secrets are not; `--strict` makes them errors, as `run` does. Exit codes: 0 valid, 2 invalid.
"""

from __future__ import annotations

import argparse
import sys

from stationmon.cli.common import load_or_report
from stationmon.config import Config, shard_view
from stationmon.domain.plant import Station
from stationmon.domain.registers import ReadRequest, plan_reads
from stationmon.domain.shards import narrowed_filters
from stationmon.domain.topics import TopicRouter

__all__ = ["describe_config", "main"]


def _station_lines(station: Station) -> list[str]:
    lines = [f"station {station.id}  {station.name}  [{station.district or 'no district'}]"]
    if station.modbus is not None:
        m = station.modbus
        where = m.serial_port if m.transport == "rtu" else f"{m.host}:{m.port}"
        base = f" address_base={m.address_base}" if m.address_base else ""
        lines.append(
            f"  modbus {m.transport} {where} device_id={m.device_id} every {m.interval_s:g}s "
            f"timeout {m.timeout_s:g}s byte_order={m.byte_order}{base}"
        )
    for loop in station.loops:
        floors = ""
        if loop.min_supply is not None or loop.min_return is not None:
            floors = f" floors {loop.min_supply or '-'}/{loop.min_return or '-'}"
        lines.append(
            f"  loop {loop.id}: {loop.emitter} {loop.design_supply:g}/{loop.design_return:g} "
            f"exponent {loop.exponent:g}{floors}"
        )
    for p in station.points:
        target = f"{p.loop}." if p.loop else ""
        sensor = f"[{p.sensor}]" if p.sensor else ""
        if p.address is not None:
            scale = f" *{p.scale:g}" if p.scale != 1.0 else ""
            offset = f" {p.offset:+g}" if p.offset else ""
            written = ""
            if p.address_written:
                base = "" if p.address_written.startswith('"') else ", address_base = 1"
                written = f" (as written: {p.address_written}{base})"
            lines.append(
                f"  point {target}{p.quantity}{sensor}: {p.register} {p.address}{written} "
                f"{p.type} {p.byte_order}{scale}{offset}"
            )
        else:
            lines.append(f"  point {target}{p.quantity}{sensor}: mqtt {p.topic} ({p.format})")
    if station.modbus is not None and station.modbus_points:
        plan = plan_reads(station)
        lines.append(f"  read plan: {len(plan)} request(s)")
        for req in plan:
            lines.append(f"    {req.describe()}")
            lines.extend(_gap_note(req))
    return lines


def _gap_note(request: ReadRequest) -> list[str]:
    """The plan note for a request that reads registers no point names (a strict device may refuse it)."""
    if not request.gaps:
        return []
    gaps = ", ".join(f"{a}..{b}" if b > a else f"{a}" for a, b in request.gaps)
    return [
        f"      note: also reads unused {request.register} {gaps}; a device that refuses them "
        "(exception 2 or 3) is read in gap-free runs instead (max_gap = 0 never fills gaps)"
    ]


def _shard_lines(full: Config, view: Config) -> list[str]:
    """Which shard this is and what it owns; the MQTT filters it subscribes to."""
    c = view.cluster
    source = "" if c.shard_source == "config" else f" (from {c.shard_source})"
    out = [
        f"shard {c.shard}/{c.shards}{source}: owns {len(view.stations)} of {len(full.stations)} stations "
        "(crc32 of the station id mod shards)"
    ]
    if view.mqtt is not None:
        router = TopicRouter(view.stations, view.mqtt.subscriptions, point_qos=view.mqtt.qos)
        ids = [s.id for s in view.stations]
        filters = narrowed_filters(
            router.templates, router.points, ids, point_qos=view.mqtt.qos, share_group=view.mqtt.share_group
        )
        out.append(f"mqtt filters of this shard: {len(filters)}")
        out.extend(f"  {f} (qos {qos})" for f, qos in filters)
    return out


def describe_config(full: Config) -> str:
    """A short human summary of a valid config (of its shard's part, when sharded)."""
    config = shard_view(full)
    loops = sum(len(s.loops) for s in config.stations)
    points = sum(len(s.points) for s in config.stations)
    ix = config.influxdb
    target = f"{ix.url} ({ix.api}: {ix.bucket if ix.api == 'v2' else ix.database})" if ix.url else "none"
    out = [
        f"{config.path}: valid",
        f"site {config.site.name or '(unnamed)'}: indoor_target {config.site.indoor_target:g} °C, "
        f"outdoor_design {config.site.outdoor_design:g} °C, timezone {config.site.timezone}",
        f"{len(config.stations)} stations, {loops} loops, {points} points",
        f"influxdb {target}; spool {ix.spool_dir}",
    ]
    if config.mqtt is not None:
        out.append(f"mqtt {config.mqtt.url}: {len(config.mqtt.subscriptions)} subscription template(s)")
    out.append(f"http {config.http.host}:{config.http.port}")
    if config.cluster.spec.sharded:
        out.extend(_shard_lines(full, config))
    if config.cluster.notify != "all":
        out.append(f"notify {config.cluster.notify}: webhooks and MQTT alerts are left to Alertmanager's receivers")
    for station in config.stations:
        out.extend(_station_lines(station))
    if config.notices:
        out.append("defaults applied:")
        out.extend(f"  {n}" for n in config.notices)
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    """Print the summary of a valid config (0), or its problems (2)."""
    config = load_or_report(args.config, shard=args.shard, require_secrets=args.strict)
    if config is None:
        return 2
    for warning in config.warnings:
        print(f"warning: {warning} (`run` refuses this; --strict makes it an error here)", file=sys.stderr)
    print(describe_config(config))
    return 0
