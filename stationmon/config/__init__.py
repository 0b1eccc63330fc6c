"""TOML config -> validated, frozen config objects and the domain's plant and rule settings.

reader.py     typed getters over TOML tables; problems as `FILE: key.path: message`, "did you mean"
secrets.py    Secret, and `*_env` / `*_file` resolution
schema.py     the config's own types (servers, alerting, simulator), each default stated once
stations.py   [site], [[stations]] -> Site, Station, Loop, Point, ModbusLink (stationmon.domain.plant)
services.py   [influxdb], [mqtt], [http], [alerting]
rules.py      [rules] -> RulesSettings (stationmon.domain.settings)
simulator.py  [simulator]
loading.py    load_config / parse_config_text: every problem of a file raised at once as ConfigError
"""

from __future__ import annotations

from stationmon.config.loading import load_config, parse_config, parse_config_text
from stationmon.config.schema import (
    FAULT_KINDS,
    FSYNC_POLICIES,
    TRANSPORTS,
    AlertingConfig,
    AlertmanagerConfig,
    Config,
    FaultConfig,
    HttpConfig,
    InfluxConfig,
    MqttAlertConfig,
    MqttConfig,
    SimulatorConfig,
    WebhookConfig,
)
from stationmon.config.secrets import Secret
from stationmon.domain.durations import parse_duration
from stationmon.domain.payloads import PAYLOAD_FORMATS
from stationmon.domain.plant import Loop, ModbusLink, Point, Site, Station
from stationmon.domain.settings import RuleSettings, RulesSettings
from stationmon.domain.topics import Subscription

__all__ = [
    "FAULT_KINDS",
    "FSYNC_POLICIES",
    "PAYLOAD_FORMATS",
    "TRANSPORTS",
    "AlertingConfig",
    "AlertmanagerConfig",
    "Config",
    "FaultConfig",
    "HttpConfig",
    "InfluxConfig",
    "Loop",
    "ModbusLink",
    "MqttAlertConfig",
    "MqttConfig",
    "Point",
    "RuleSettings",
    "RulesSettings",
    "Secret",
    "SimulatorConfig",
    "Site",
    "Station",
    "Subscription",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "parse_config_text",
    "parse_duration",
]
