"""`[cluster]`: several instances of one config (an HA pair, shards), and one instance's view of the plant.

The shard comes from, strongest first: `run --shard i/N` (`with_shard`), the environment variable
`STATIONMON_SHARD=i/N` (so a Kubernetes StatefulSet can derive it from the pod's ordinal), then
`[cluster] shard`/`shards`. `shard_view` narrows a config to the stations its shard owns
(`stationmon.domain.shards`: crc32 of the id, mod N); an unsharded config is returned as it is.
"""

from __future__ import annotations

import os
from dataclasses import replace

from stationmon.config.reader import Table
from stationmon.config.schema import CLUSTER_NOTIFY, ClusterConfig, Config
from stationmon.domain.shards import MAX_SHARDS, ShardSpec, owned, parse_shard

__all__ = ["SHARD_ENV", "read_cluster", "shard_view", "with_shard"]

SHARD_ENV = "STATIONMON_SHARD"


def read_cluster(root: Table, *, has_alertmanager: bool) -> ClusterConfig:
    """`[cluster]`, with `STATIONMON_SHARD` (if set) in place of `shard` and `shards`."""
    t = root.table_or_empty("cluster")
    d = ClusterConfig()
    shards = t.integer("shards", d.shards, lo=1, hi=MAX_SHARDS)
    shard = t.integer("shard", d.shard, lo=0)
    notify = t.choice("notify", CLUSTER_NOTIFY, d.notify, "notify policy")
    t.finish()
    if notify == "alertmanager" and not has_alertmanager:
        t.add("notify", 'is "alertmanager" but no [[alerting.alertmanager]] is configured: nobody would be told')
    source = "config"
    env = os.environ.get(SHARD_ENV, "").strip()
    if env:
        try:
            spec = parse_shard(env)
        except ValueError as exc:
            t.add("shard", f"from {SHARD_ENV}: {exc}")
            return replace(d, notify=notify)
        shard, shards, source = spec.index, spec.count, SHARD_ENV
    elif shard >= shards:
        t.add("shard", f"must be 0..{shards - 1} for shards = {shards}, got {shard}")
        return replace(d, shards=shards, notify=notify)
    return ClusterConfig(shards=shards, shard=shard, notify=notify, shard_source=source)


def with_shard(config: Config, spec: ShardSpec, source: str = "--shard") -> Config:
    """The config with its shard set from the command line."""
    cluster = replace(config.cluster, shards=spec.count, shard=spec.index, shard_source=source)
    return replace(config, cluster=cluster)


def shard_view(config: Config) -> Config:
    """The config as its shard sees it: only the stations it owns (itself when unsharded)."""
    spec = config.cluster.spec
    if not spec.sharded:
        return config
    return replace(config, stations=tuple(owned(config.stations, spec)))
