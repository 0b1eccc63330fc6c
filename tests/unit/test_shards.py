"""Shards: ownership by crc32 of the station id, `[cluster]` and STATIONMON_SHARD, narrowed MQTT filters,
`check-config --shard`, and what a Service of one shard builds."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from stationmon.cli import main
from stationmon.config import parse_config_text, shard_view, with_shard
from stationmon.domain.shards import ShardSpec, narrowed_filters, owned, parse_shard, shard_of
from stationmon.domain.topics import Subscription, TopicRouter
from stationmon.errors import ConfigError
from stationmon.service import Service

IDS = [f"harbin-{district}-{n}" for district in ("daoli", "nangang", "xiangfang", "pingfang") for n in range(50)]


def config_text(tmp_path: Path, cluster: str = "", n: int = 30) -> str:
    stations = "\n".join(
        f'[[stations]]\nid = "{sid}"\n[[stations.loops]]\nid = "sec1"\ndesign_supply = 50.0\ndesign_return = 40.0\n'
        f'[[stations.points]]\nloop = "sec1"\nquantity = "supply_temp"\ntopic = "plc/{sid}/supply"\n'
        for sid in IDS[:n]
    )
    return f"""
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "stationmon"
spool_dir = "{tmp_path / "spool"}"

[mqtt]
url = "mqtt://127.0.0.1:1883"
share_group = "stationmon"

[[mqtt.subscriptions]]
topic = "heat/{{station}}/{{loop}}/{{quantity}}"

[[mqtt.subscriptions]]
topic = "json/{{station}}/#"
format = "json_fields"

[[mqtt.subscriptions]]
topic = "plant/+/{{loop}}/{{quantity}}"
station = "{IDS[0]}"

{cluster}
{stations}
"""


def test_the_hash_is_crc32_of_the_utf8_id_mod_n() -> None:
    for sid in ("daoli-youyi-334", "站-1", "a"):
        for n in (1, 2, 3, 7):
            assert shard_of(sid, n) == zlib.crc32(sid.encode("utf-8")) % n
    # documented examples, so other tools can check their own implementation
    assert zlib.crc32(b"daoli-youyi-334") % 3 == shard_of("daoli-youyi-334", 3)


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_every_station_is_owned_by_exactly_one_shard(shards: int) -> None:
    class S:
        def __init__(self, id: str) -> None:
            self.id = id

    stations = [S(sid) for sid in IDS]
    parts = [owned(stations, ShardSpec(i, shards)) for i in range(shards)]
    ids = [s.id for part in parts for s in part]
    assert sorted(ids) == sorted(IDS)  # all of them, none twice
    if shards > 1:  # and spread: no shard is empty or holds nearly all
        assert all(len(IDS) / shards / 2 < len(p) < 2 * len(IDS) / shards for p in parts), [len(p) for p in parts]


@pytest.mark.parametrize(
    ("text", "expected"), [("0/1", ShardSpec(0, 1)), ("2/3", ShardSpec(2, 3)), (" 1 / 2 ", ShardSpec(1, 2))]
)
def test_parse_shard(text: str, expected: ShardSpec) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/3", "1", "-1/3", "a/b", "0/0", "1/3/4"])
def test_parse_shard_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_shard(text)


def test_narrowed_filters_put_station_ids_in_the_station_level() -> None:
    subs = (
        Subscription(topic="heat/{station}/{loop}/{quantity}"),
        Subscription(topic="json/{station}/#", format="json_fields"),
        Subscription(topic="plant/+/{loop}/{quantity}", station="s1"),
    )
    router = TopicRouter([], subs)
    filters = narrowed_filters(router.templates, ["heat/s1/sec1/flow", "other/s2/x"], ["s1", "s2"], share_group="g")
    assert [f for f, _ in filters] == [
        "$share/g/heat/s1/+/+",
        "$share/g/heat/s2/+/+",
        "$share/g/json/s1/#",
        "$share/g/json/s2/#",
        "$share/g/plant/+/+/+",  # no {station} level: cannot be narrowed
        "$share/g/other/s2/x",  # a point topic no filter covers; heat/s1/sec1/flow is covered
    ]


def test_cluster_table_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATIONMON_SHARD", raising=False)
    text = config_text(tmp_path, "[cluster]\nshards = 3\nshard = 2\n")
    cfg = parse_config_text(text, require_influxdb=False)
    assert (cfg.cluster.shard, cfg.cluster.shards, cfg.cluster.shard_source) == (2, 3, "config")
    monkeypatch.setenv("STATIONMON_SHARD", "1/4")
    cfg = parse_config_text(text, require_influxdb=False)
    assert (cfg.cluster.shard, cfg.cluster.shards, cfg.cluster.shard_source) == (1, 4, "STATIONMON_SHARD")
    cfg = with_shard(cfg, ShardSpec(0, 2))
    assert (cfg.cluster.shard, cfg.cluster.shards, cfg.cluster.shard_source) == (0, 2, "--shard")
    assert {s.id for s in shard_view(cfg).stations} == {sid for sid in IDS[:30] if shard_of(sid, 2) == 0}


@pytest.mark.parametrize(
    ("cluster", "env", "message"),
    [
        ("shards = 3\nshard = 3", None, "cluster.shard: must be 0..2 for shards = 3, got 3"),
        ("shards = 0", None, "cluster.shards:"),
        ('notify = "pager"', None, "cluster.notify: unknown notify policy 'pager'"),
        ('notify = "alertmanager"', None, 'cluster.notify: is "alertmanager" but no [[alerting.alertmanager]]'),
        ("shards = 2", "2/2", "cluster.shard: from STATIONMON_SHARD: shard must be 0..1 for 2 shards, got 2"),
        ("", "first", "cluster.shard: from STATIONMON_SHARD: expected i/N such as 0/3, got 'first'"),
        ("sharding = 2", None, "cluster.sharding: unknown key (did you mean 'shard'?)"),
    ],
)
def test_cluster_problems_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: str, env: str | None, message: str
) -> None:
    if env is None:
        monkeypatch.delenv("STATIONMON_SHARD", raising=False)
    else:
        monkeypatch.setenv("STATIONMON_SHARD", env)
    with pytest.raises(ConfigError) as err:
        parse_config_text(config_text(tmp_path, f"[cluster]\n{cluster}\n"), "plant.toml", require_influxdb=False)
    assert any(line.startswith(f"plant.toml: {message}") for line in err.value.problems), err.value.problems


def test_three_shards_services_own_every_station_once_and_subscribe_narrowly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATIONMON_SHARD", raising=False)
    seen: list[str] = []
    for i in range(3):
        cfg = parse_config_text(config_text(tmp_path / str(i), f"[cluster]\nshards = 3\nshard = {i}\n"), "x.toml")
        service = Service(cfg)
        mine = [s.id for s in service.config.stations]
        assert mine and all(shard_of(sid, 3) == i for sid in mine)
        seen += mine
        assert service.mqtt is not None
        filters = [f for f, _ in service.mqtt.filters]
        assert {f"$share/stationmon/heat/{sid}/+/+" for sid in mine} <= set(filters)
        assert {f"$share/stationmon/json/{sid}/#" for sid in mine} <= set(filters)
        assert not any("/heat/+/" in f or "/json/+/" in f for f in filters)
        assert {f"$share/stationmon/plc/{sid}/supply" for sid in mine} <= set(filters)
        assert not any(f"/{sid}/" in f for f in filters for sid in IDS if sid not in mine)
        assert service.cluster_status()["shard"] == i and service.cluster_status()["stations"] == len(mine)
        assert service.evaluator.table.n_loops == len(mine)  # rules judge only this shard's loops
    assert sorted(seen) == sorted(IDS[:30])


def test_check_config_with_shard_prints_what_the_shard_owns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATIONMON_SHARD", raising=False)
    path = tmp_path / "plant.toml"
    path.write_text(config_text(tmp_path, n=12))
    assert main(["check-config", "-c", str(path), "--shard", "1/3"]) == 0
    out = capsys.readouterr().out
    mine = [sid for sid in IDS[:12] if shard_of(sid, 3) == 1]
    assert f"shard 1/3 (from --shard): owns {len(mine)} of 12 stations" in out
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("station ")]
    assert listed == mine
    assert f"$share/stationmon/heat/{mine[0]}/+/+ (qos 1)" in out
    assert main(["check-config", "-c", str(path), "--shard", "3/3"]) == 2
    assert "plant.toml: --shard: shard must be 0..2 for 3 shards, got 3" in capsys.readouterr().err
