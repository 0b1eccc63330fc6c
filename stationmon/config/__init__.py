"""TOML config -> validated, frozen config objects and the domain's plant and rule settings.

reader.py has the typed getters and the `FILE: key.path: message` problems, secrets.py the `*_env` /
`*_file` resolution, schema.py the config's own types (each default once), one module per group of sections.
"""

from __future__ import annotations

from stationmon.config.cluster import SHARD_ENV, shard_view, with_shard
from stationmon.config.loading import load_config, parse_config, parse_config_text
from stationmon.config.schema import (
    AlertingConfig,
    AlertmanagerConfig,
    ClusterConfig,
    Config,
    FaultConfig,
    HttpConfig,
    InfluxConfig,
    MqttAlertConfig,
    MqttConfig,
    SimLoopConfig,
    SimulatorConfig,
    WebhookConfig,
)
from stationmon.config.secrets import Secret
from stationmon.domain.durations import parse_duration

__all__ = [
    "SHARD_ENV",
    "AlertingConfig",
    "AlertmanagerConfig",
    "ClusterConfig",
    "Config",
    "FaultConfig",
    "HttpConfig",
    "InfluxConfig",
    "MqttAlertConfig",
    "MqttConfig",
    "Secret",
    "SimLoopConfig",
    "SimulatorConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "parse_config_text",
    "parse_duration",
    "shard_view",
    "with_shard",
]
