"""TOML file -> `Config`: every section read, every problem raised together as one `ConfigError`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stationmon.config.cluster import read_cluster
from stationmon.config.reader import Problems, Table
from stationmon.config.rules import read_rules
from stationmon.config.schema import Config
from stationmon.config.services import read_alerting, read_http, read_influxdb, read_mqtt
from stationmon.config.simulator import read_simulator
from stationmon.config.stations import read_site, read_stations
from stationmon.errors import ConfigError

__all__ = ["load_config", "parse_config", "parse_config_text"]

_NO_FILE = "<config>"


def _file_name(path: str) -> str:
    return Path(path).name if path != _NO_FILE else path


def parse_config(
    data: Mapping[str, Any], path: str = _NO_FILE, *, require_influxdb: bool = True, require_secrets: bool = True
) -> Config:
    """Validate parsed TOML; raise ConfigError with every problem found.

    `require_secrets=False` (check-config without --strict): a secret whose variable is not set or whose
    file cannot be read is a warning (`Config.warnings`), not an error.
    """
    problems = Problems(_file_name(path))
    root = Table(data, "", problems)
    site = read_site(root)
    influx = read_influxdb(root, require_influxdb)
    mqtt = read_mqtt(root)
    http = read_http(root)
    alerting = read_alerting(root, has_mqtt=mqtt is not None)
    stations = read_stations(root, has_mqtt=mqtt is not None)
    rules = read_rules(root)
    simulator = read_simulator(root, {s.id: s for s in stations})
    cluster = read_cluster(root, has_alertmanager=bool(alerting.alertmanager))
    state_dir = root.text("state_dir", "")
    root.finish()
    warnings = [] if require_secrets else problems.of_environment
    errors = [line for line in problems.lines if line not in warnings]
    if errors:
        raise ConfigError(errors)
    return Config(
        path=path,
        site=site,
        influxdb=influx,
        stations=tuple(stations),
        rules=rules,
        http=http,
        mqtt=mqtt,
        alerting=alerting,
        simulator=simulator,
        cluster=cluster,
        state_dir=state_dir or str(Path(influx.spool_dir).parent),
        notices=tuple(problems.notices),
        warnings=tuple(warnings),
    )


def parse_config_text(
    text: str, path: str = _NO_FILE, *, require_influxdb: bool = True, require_secrets: bool = True
) -> Config:
    """Parse TOML text and validate it (`require_secrets`: see `parse_config`)."""
    name = _file_name(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    except ValueError as exc:  # an integer of more digits than int() converts (4300)
        raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    except (RecursionError, MemoryError):  # tomllib recurses once per nesting level
        raise ConfigError([f"{name}: TOML syntax error: arrays or tables nested too deeply"]) from None
    return parse_config(data, path, require_influxdb=require_influxdb, require_secrets=require_secrets)


def load_config(path: str | os.PathLike[str], *, require_influxdb: bool = True, require_secrets: bool = True) -> Config:
    """Read and validate a TOML config file; raise ConfigError with every problem found (`require_secrets`:
    see `parse_config`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p.name}: cannot read config: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p.name}: not UTF-8 text"]) from None
    return parse_config_text(text, str(p), require_influxdb=require_influxdb, require_secrets=require_secrets)
