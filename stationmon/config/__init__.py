"""TOML config -> validated, frozen config objects and the domain's plant and rule settings.

The plant (Site, Station, Loop, Point, ModbusLink), the rule settings and MQTT subscriptions are domain
types: import them from stationmon.domain.

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

__all__ = [
    "FAULT_KINDS",
    "AlertingConfig",
    "AlertmanagerConfig",
    "Config",
    "FaultConfig",
    "HttpConfig",
    "InfluxConfig",
    "MqttAlertConfig",
    "MqttConfig",
    "Secret",
    "SimulatorConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "parse_config_text",
    "parse_duration",
]
