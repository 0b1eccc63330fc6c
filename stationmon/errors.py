"""The exceptions stationmon raises.

    StationmonError                 base of everything below
    ├── ConfigError                 the config is invalid; carries every problem found, one line each
    ├── CollectorError              a collector could not read (adapters convert pymodbus/aiomqtt errors)
    │   ├── ModbusError
    │   └── MqttError
    ├── StorageError                InfluxDB or the spool failed
    └── NotifyError                 an alert receiver failed

Adapters catch their dependencies' exceptions and raise these (`raise ModbusError(...) from exc`),
so nothing from pymodbus, aiomqtt or aiohttp escapes past an adapter.
"""

from __future__ import annotations

__all__ = [
    "CollectorError",
    "ConfigError",
    "ModbusError",
    "MqttError",
    "NotifyError",
    "StationmonError",
    "StorageError",
]


class StationmonError(Exception):
    """Base class of stationmon's own errors."""


class ConfigError(StationmonError):
    """An invalid config: `problems` holds every `FILE: key.path: what is wrong` line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class CollectorError(StationmonError):
    """A collector failed to read a device or a broker."""


class ModbusError(CollectorError):
    """A Modbus request failed: connection, timeout, or an exception response."""


class MqttError(CollectorError):
    """The MQTT connection failed."""


class StorageError(StationmonError):
    """Writing to InfluxDB or the spool failed."""


class NotifyError(StationmonError):
    """Delivering an alert failed."""
