"""The config's own types: how stationmon reaches its servers, alerts and simulates. Each default once.

The section parsers read their defaults from these classes (`d = InfluxConfig()`), never from a second
literal. The plant (Site, Station, Loop, Point, ModbusLink) and the rule settings are domain types
(`stationmon.domain.plant`, `stationmon.domain.settings`); the config only builds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stationmon.config.secrets import Secret
from stationmon.domain.plant import Site, Station
from stationmon.domain.settings import RulesSettings
from stationmon.domain.shards import ShardSpec
from stationmon.domain.topics import Subscription

__all__ = [
    "CLUSTER_NOTIFY",
    "FAULT_KINDS",
    "FSYNC_POLICIES",
    "INFLUX_APIS",
    "INFLUX_PRECISIONS",
    "MQTT_PROTOCOLS",
    "MQTT_TLS_PORT",
    "PARITIES",
    "STATION_FAULT_KINDS",
    "TRANSPORTS",
    "AlertingConfig",
    "AlertmanagerConfig",
    "ClusterConfig",
    "Config",
    "FaultConfig",
    "HttpConfig",
    "InfluxConfig",
    "MqttAlertConfig",
    "MqttConfig",
    "SimLoopConfig",
    "SimulatorConfig",
    "WebhookConfig",
    "default_spool_dir",
]

TRANSPORTS = ("tcp", "rtu", "rtu-over-tcp")
PARITIES = ("N", "E", "O")
FSYNC_POLICIES = ("always", "batch", "never")
INFLUX_APIS = ("v1", "v2")
INFLUX_PRECISIONS = ("s", "ms", "us", "ns")
MQTT_PROTOCOLS = ("5", "3.1.1")  # 3.1.1 for brokers that speak only that (no session expiry)
MQTT_TLS_PORT = 8883  # mqtts:// without a port
CLUSTER_NOTIFY = ("all", "alertmanager")  # alertmanager: webhooks and MQTT alerts are left to its receivers
FAULT_KINDS = (
    "undersupply",
    "flatline",
    "swapped_sensors",
    "offline",
    "low_delta_t",
    "pump_stop",
    "probe_sentinel",
    "outdoor_probe_fail",
    "primary_shortage",
    "cold_households",
)
STATION_FAULT_KINDS = ("offline", "outdoor_probe_fail", "primary_shortage")  # need no loop


def default_spool_dir() -> str:
    """The spool under systemd's STATE_DIRECTORY, else XDG_STATE_HOME, else ~/.local/state."""
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return str(Path(base).expanduser() / "stationmon" / "spool")


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """`url` None means no server: readings stay in the spool (the demo without influxd)."""

    url: str | None = None
    api: str = "v2"
    org: str = ""
    bucket: str = ""
    token: Secret | None = None
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: Secret | None = None
    spool_dir: str = field(default_factory=default_spool_dir)
    spool_max_bytes: int = 1 << 30
    spool_fsync: str = "batch"
    dead_letter_file: str = ""  # "" -> dead-letter.lp in spool_dir
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_concurrent_writes: int = 2
    max_buffered_lines: int = 200_000
    timeout_s: float = 10.0
    gzip: bool = True
    precision: str = "ms"
    max_retry_delay_s: float = 60.0


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The broker readings arrive from; host, port and tls are derived from `url`."""

    url: str
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str = ""
    password: Secret | None = None
    client_id: str = "stationmon"
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive_s: float = 30.0
    qos: int = 1
    protocol: str = "5"
    clean_start: bool = False
    session_expiry_s: float = 7 * 86400.0
    share_group: str = ""
    watchdog_s: float = 0.0
    max_payload_bytes: int = 65536
    reconnect_max_s: float = 30.0
    subscriptions: tuple[Subscription, ...] = ()
    # distinct {sensor}s and quantities one loop may have from MQTT; more: rejected as too_many_series
    max_sensors_per_loop: int = 500
    max_quantities_per_loop: int = 64


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The status page and API; host and port are derived from `listen`."""

    listen: str = "127.0.0.1:9640"
    host: str = "127.0.0.1"
    port: int = 9640
    token: Secret | None = None
    history_window_s: float = 6 * 3600.0
    external_url: str = ""
    grafana_url: str = ""  # Grafana's base URL: the status page links each station to its dashboard there


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig:
    """One `[[alerting.alertmanager]]`."""

    url: str
    timeout_s: float = 5.0
    resend_interval_s: float = 60.0
    bearer_token: Secret | None = None


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One `[[alerting.webhook]]`."""

    url: str = field(repr=False)  # may carry the receiver's key
    timeout_s: float = 5.0
    hmac_secret: Secret | None = None
    hmac_header: str = "X-Stationmon-Signature"
    max_attempts: int = 0
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class MqttAlertConfig:
    """`[alerting.mqtt]`: alerts published, retained, to the readings' broker."""

    enabled: bool = False
    topic_prefix: str = "stationmon/alerts"
    qos: int = 1


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    """`[alerting]`: the receivers and the queue in front of them."""

    alertmanager: tuple[AlertmanagerConfig, ...] = ()
    webhook: tuple[WebhookConfig, ...] = ()
    mqtt: MqttAlertConfig = field(default_factory=MqttAlertConfig)
    queue_size: int = 10000
    retry_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """`[cluster]`: which shard this instance is (`shard` of `shards`), and who notifies people.

    `shard_source` says where the shard came from: "config", "STATIONMON_SHARD" or "--shard".
    """

    shards: int = 1
    shard: int = 0
    notify: str = "all"
    shard_source: str = "config"

    @property
    def spec(self) -> ShardSpec:
        """The shard as the domain knows it."""
        return ShardSpec(self.shard, self.shards)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """One `[[simulator.faults]]`: what goes wrong where, when and for how long."""

    station: str
    kind: str
    loop: str | None = None
    start_s: float = 0.0
    duration_s: float = 600.0


@dataclass(frozen=True, slots=True)
class SimLoopConfig:
    """One `[[simulator.loops]]`: how one simulated loop is run and built, where it differs from its design.

    `fixed_supply`: the operator holds this supply temperature (°C) instead of following the curve;
    `emitter_capacity`: installed emitter output over the design load (1.0 as designed; above 1 the
    buildings stay warm on cooler water than the design predicts, as after an insulation retrofit);
    `indoor_sensors`: household sensors on this loop (None: `indoor_sensors_per_loop`)."""

    station: str
    loop: str
    fixed_supply: float | None = None
    emitter_capacity: float = 1.0
    indoor_sensors: int | None = None


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """`[simulator]`: the simulated stations' weather, noise, loops and faults."""

    outdoor_temp: float | None = None
    seed: int = 1
    noise: float = 0.05
    publish_interval_s: float = 5.0
    indoor_sensors_per_loop: int = 0
    building_time_constant_s: float = 1800.0  # compressed (real buildings: tens of hours) so demos move
    faults: tuple[FaultConfig, ...] = ()
    loops: tuple[SimLoopConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated config; `notices` are the defaults check-config points out, `warnings` the
    problems it tolerates (secrets not set on this machine, read with `require_secrets=False`)."""

    path: str
    site: Site
    influxdb: InfluxConfig
    stations: tuple[Station, ...]
    rules: RulesSettings
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig | None = None
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    state_dir: str = ""  # "" -> the spool directory's parent
    notices: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def station(self, station_id: str) -> Station:
        """The station with this id; KeyError if none."""
        for s in self.stations:
            if s.id == station_id:
                return s
        raise KeyError(station_id)
