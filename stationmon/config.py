"""TOML config -> validated, frozen config objects.

Every check lives here and every problem is reported as `FILE: key.path: what is wrong`; all problems
are collected and raised together as one `ConfigError`. Secrets are resolved here from `*_env`
(environment variable) or `*_file` (file) keys and kept in `Secret`, whose repr never shows them.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from stationmon.domain.plant import Loop, ModbusLink, Point, Site, Station
from stationmon.domain.settings import RULE_OPTIONS, RuleSettings, RulesSettings
from stationmon.domain.vocabulary import (
    BYTE_ORDERS,
    CANONICAL_QUANTITIES,
    DATA_TYPES,
    EMITTER_EXPONENTS,
    LOOP_QUANTITIES,
    REGISTER_TYPES,
    REGISTER_WIDTH,
    RULE_NAMES,
    SEVERITIES,
    STATION_QUANTITIES,
)
from stationmon.errors import ConfigError

__all__ = [
    "FAULT_KINDS",
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
    "SubscriptionConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "parse_duration",
]

TRANSPORTS = ("tcp", "rtu", "rtu-over-tcp")
PAYLOAD_FORMATS = ("plain", "json", "json_fields")
FAULT_KINDS = ("undersupply", "flatline", "swapped_sensors", "offline", "low_delta_t")
FSYNC_POLICIES = ("always", "batch", "never")

_ID_RE = re.compile(r"^[a-z0-9_-]+$")
_QUANTITY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MMDD_RE = re.compile(r"^(\d{2})-(\d{2})$")
_TEMPLATE_FIELDS = ("station", "loop", "quantity", "sensor")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_duration(text: str) -> float:
    """Parse "500ms", "10s", "5m", "24h", "1h30m" into seconds; ValueError if malformed."""
    text = text.strip()
    if not _DURATION_RE.match(text):
        raise ValueError(text)
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART_RE.findall(text))


class Secret:
    """A secret string whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret itself; pass it straight to the client that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ----------------------------------------------------------------------------------------------------
# The config objects


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
    spool_dir: str = "/var/lib/stationmon/spool"
    spool_max_bytes: int = 1 << 30
    spool_fsync: str = "batch"
    dead_letter_file: str = ""
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_concurrent_writes: int = 2
    max_buffered_lines: int = 200_000
    timeout_s: float = 10.0
    gzip: bool = True
    precision: str = "ms"
    max_retry_delay_s: float = 60.0


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    topic: str
    format: str = "plain"
    value: str = "value"
    time: str = ""
    qos: int = 1
    station: str = ""
    loop: str = ""
    quantity: str = ""
    sensor: str = ""


@dataclass(frozen=True, slots=True)
class MqttConfig:
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
    protocol: str = "5"  # "5", or "3.1.1" for brokers that speak only that (no session expiry)
    clean_start: bool = False
    session_expiry_s: float = 7 * 86400.0
    share_group: str = ""
    watchdog_s: float = 0.0
    max_payload_bytes: int = 65536
    reconnect_max_s: float = 30.0
    subscriptions: tuple[SubscriptionConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: str = "127.0.0.1:9640"
    host: str = "127.0.0.1"
    port: int = 9640
    token: Secret | None = None
    history_window_s: float = 6 * 3600.0
    external_url: str = ""


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig:
    url: str
    timeout_s: float = 5.0
    resend_interval_s: float = 60.0
    bearer_token: Secret | None = None


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str = field(repr=False)  # may carry the receiver's key
    timeout_s: float = 5.0
    hmac_secret: Secret | None = None
    hmac_header: str = "X-Stationmon-Signature"
    max_attempts: int = 0
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class MqttAlertConfig:
    enabled: bool = False
    topic_prefix: str = "stationmon/alerts"
    qos: int = 1


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    alertmanager: tuple[AlertmanagerConfig, ...] = ()
    webhook: tuple[WebhookConfig, ...] = ()
    mqtt: MqttAlertConfig = field(default_factory=MqttAlertConfig)
    queue_size: int = 10000
    retry_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class FaultConfig:
    station: str
    kind: str
    loop: str | None = None
    start_s: float = 0.0
    duration_s: float = 600.0


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    outdoor_temp: float | None = None
    seed: int = 1
    noise: float = 0.05
    publish_interval_s: float = 5.0
    indoor_sensors_per_loop: int = 0
    faults: tuple[FaultConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    site: Site
    influxdb: InfluxConfig
    stations: tuple[Station, ...]
    rules: RulesSettings
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig | None = None
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    state_dir: str = ""
    notices: tuple[str, ...] = ()

    def station(self, station_id: str) -> Station:
        """The station with this id; KeyError if none."""
        for s in self.stations:
            if s.id == station_id:
                return s
        raise KeyError(station_id)


# ----------------------------------------------------------------------------------------------------
# Reading the TOML

T = TypeVar("T")
_MISSING: Any = object()


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []
        self.notices: list[str] = []  # defaults a user may not expect, for check-config

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{self.file}: {path}: {message}")


def _type_name(value: object) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


class _Table:
    """A TOML table being read: typed getters that record problems and the keys used."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: _Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.known: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        self.known.add(name)
        return name in self.data

    def _get(self, name: str, default: Any, check: Callable[[Any], bool], expected: str) -> Any:
        self.known.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not check(value):
            self.problems.add(self.key(name), f"expected {expected}, got {_type_name(value)} {value!r}")
            return default
        return value

    def text(self, name: str, default: Any = "") -> Any:
        return self._get(name, default, lambda v: isinstance(v, str), "a string")

    def flag(self, name: str, default: Any = False) -> Any:
        return self._get(name, default, lambda v: isinstance(v, bool), "true or false")

    def integer(self, name: str, default: Any = 0, *, lo: int | None = None, hi: int | None = None) -> Any:
        value = self._get(name, default, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
        out_of_range = isinstance(value, int) and ((lo is not None and value < lo) or (hi is not None and value > hi))
        if name in self.data and value is not default and out_of_range:
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.problems.add(self.key(name), f"{value} is out of range (expected {rng})")
            return default
        return value

    def number(self, name: str, default: Any = 0.0, *, lo: float | None = None, hi: float | None = None) -> Any:
        value = self._get(name, default, lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number")
        if name in self.data and value is not default:
            value = float(value)
            if value != value:
                self.problems.add(self.key(name), "NaN is not allowed")
                return default
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
                self.problems.add(self.key(name), f"{value:g} is out of range (expected {rng})")
                return default
        return value

    def duration(self, name: str, default: float, *, allow_zero: bool = True) -> float:
        self.known.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, str):
            self.problems.add(
                self.key(name),
                f'expected a duration string such as "500ms", "10s", "5m" or "24h", got {_type_name(value)} {value!r}',
            )
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.problems.add(
                self.key(name),
                f'bad duration {value!r} (expected a number and a unit: "500ms", "10s", "5m", "24h")',
            )
            return default
        if seconds == 0 and not allow_zero:
            self.problems.add(self.key(name), "must be longer than 0s")
            return default
        return seconds

    def choice(self, name: str, choices: tuple[str, ...], default: str, what: str = "value") -> str:
        value = self.text(name, _MISSING)
        if value is _MISSING:
            return default
        if value not in choices:
            hint = _suggest(value, choices)
            self.problems.add(
                self.key(name),
                f"unknown {what} {value!r} (expected one of {', '.join(choices)}){hint}",
            )
            return default
        return str(value)

    def table(self, name: str) -> _Table | None:
        self.known.add(name)
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            self.problems.add(self.key(name), f"expected a table, got {_type_name(value)} {value!r}")
            return None
        return _Table(value, self.key(name), self.problems)

    def tables(self, name: str) -> Iterator[tuple[int, _Table]]:
        self.known.add(name)
        if name not in self.data:
            return
        value = self.data[name]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problems.add(
                self.key(name), f"expected an array of tables ([[{self.key(name)}]]), got {_type_name(value)}"
            )
            return
        for i, item in enumerate(value):
            yield i, _Table(item, f"{self.key(name)}[{i}]", self.problems)

    def secret(self, name: str) -> Secret | None:
        """Resolve `<name>_env` / `<name>_file`; a literal `<name>` is refused."""
        self.known.update({name, f"{name}_env", f"{name}_file"})
        if name in self.data:
            self.problems.add(
                self.key(name),
                f"secrets do not belong in the config file; use {name}_env (an environment variable) "
                f"or {name}_file (a file holding it)",
            )
        env = self.text(f"{name}_env", "")
        path = self.text(f"{name}_file", "")
        if env and path:
            self.problems.add(self.key(f"{name}_env"), f"give either {name}_env or {name}_file, not both")
            return None
        if env:
            value = os.environ.get(env)
            if value is None or value == "":
                self.problems.add(self.key(f"{name}_env"), f"environment variable {env} is not set")
                return None
            return Secret(value)
        if path:
            try:
                return Secret(Path(path).expanduser().read_text(encoding="utf-8").strip())
            except OSError as exc:
                self.problems.add(self.key(f"{name}_file"), f"cannot read {path}: {exc.strerror or exc}")
                return None
        return None

    def finish(self) -> None:
        """Report keys that were never asked for, with a suggestion."""
        for name in self.data:
            if name not in self.known:
                self.problems.add(self.key(name), f"unknown key{_suggest(name, sorted(self.known))}")


def _suggest(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _split_listen(value: str, path: str, problems: _Problems) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.add(path, f"expected HOST:PORT such as 127.0.0.1:9640, got {value!r}")
        return "127.0.0.1", 9640
    return host.strip("[]") or "0.0.0.0", int(port)


def _redact(url: str) -> str:
    """The URL without its user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _check_url(value: str, path: str, problems: _Problems, schemes: tuple[str, ...], show: bool = True) -> bool:
    """Scheme, host and port of a URL; `show=False` keeps a secret URL out of the message."""
    parts = urlsplit(value)
    if parts.username or parts.password:
        problems.add(path, "must not carry credentials (user:password@); use the *_env or *_file keys")
        return False
    if parts.scheme not in schemes or not parts.hostname:
        got = f", got {_redact(value)!r}" if show else ""
        problems.add(path, f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}{got}")
        return False
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        problems.add(path, f"bad port in URL {_redact(value)!r}")
        return False
    return True


# ----------------------------------------------------------------------------------------------------
# Sections


def _site(root: _Table, notices: list[str]) -> Site:
    t = root.table("site")
    if t is None:
        notices.append("site: no [site] table; indoor_target 18.0 °C, outdoor_design -24.2 °C (Harbin)")
        return Site()
    if not t.has("outdoor_design"):
        notices.append("site.outdoor_design: not set; using -24.2 °C (Harbin): set your city's")
    tz = t.text("timezone", "Asia/Shanghai")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        t.problems.add(t.key("timezone"), f"unknown time zone {tz!r} (expected an IANA name such as Asia/Shanghai)")
        tz = "Asia/Shanghai"
    site = Site(
        name=t.text("name", ""),
        timezone=tz,
        indoor_target=t.number("indoor_target", 18.0, lo=5.0, hi=30.0),
        outdoor_design=t.number("outdoor_design", -24.2, lo=-60.0, hi=15.0),
        design_indoor=t.number("design_indoor", 18.0, lo=5.0, hi=30.0),
    )
    t.finish()
    return site


def _influx(root: _Table, problems: _Problems, notices: list[str], require: bool) -> InfluxConfig:
    t = root.table("influxdb")
    if t is None:
        if require:
            problems.add("influxdb", "missing: an [influxdb] table with url is needed to store readings")
        return InfluxConfig(spool_dir=_default_spool_dir())
    url = t.text("url", None)
    if url is None:
        if require:
            problems.add(t.key("url"), "missing: the InfluxDB URL, such as http://127.0.0.1:8086")
    elif not _check_url(url, t.key("url"), problems, ("http", "https")):
        url = None
    v1_keys = [k for k in ("database", "retention_policy", "username", "password_env", "password_file") if k in t.data]
    v2_keys = [k for k in ("org", "bucket", "token_env", "token_file") if k in t.data]
    if t.has("api"):
        api = t.choice("api", ("v1", "v2"), "v2", "API")
    else:
        api = "v1" if v1_keys and not v2_keys else "v2"
        notices.append(f'influxdb.api: not set; using "{api}"')
    org = t.text("org", "")
    bucket = t.text("bucket", "")
    database = t.text("database", "")
    rp = t.text("retention_policy", "")
    username = t.text("username", "")
    token = t.secret("token")
    password = t.secret("password")
    if api == "v2":
        for k in v1_keys:
            problems.add(t.key(k), 'only for api = "v1" (api is "v2": use org, bucket and token_env)')
        if not org:
            problems.add(t.key("org"), 'missing: api = "v2" needs org, bucket and token_env (or token_file)')
        if not bucket:
            problems.add(t.key("bucket"), 'missing: api = "v2" needs a bucket')
        if token is None and not ("token_env" in t.data or "token_file" in t.data):
            problems.add(t.key("token_env"), 'missing: api = "v2" needs a token (token_env or token_file)')
    else:
        for k in v2_keys:
            problems.add(t.key(k), 'only for api = "v2" (api is "v1": use database, username, password_env)')
        if not database:
            problems.add(t.key("database"), 'missing: api = "v1" needs a database')
        if password is not None and not username:
            problems.add(t.key("username"), "missing: a password needs a username")
    spool_dir = t.text("spool_dir", "")
    if not spool_dir:
        spool_dir = _default_spool_dir()
        notices.append(f"influxdb.spool_dir: not set; spooling to {spool_dir}")
    precision = t.choice("precision", ("s", "ms", "us", "ns"), "ms", "precision")
    cfg = InfluxConfig(
        url=url,
        api=api,
        org=org,
        bucket=bucket,
        token=token,
        database=database,
        retention_policy=rp,
        username=username,
        password=password,
        spool_dir=spool_dir,
        spool_max_bytes=t.integer("spool_max_bytes", 1 << 30, lo=4096),
        spool_fsync=t.choice("spool_fsync", FSYNC_POLICIES, "batch", "fsync policy"),
        dead_letter_file=t.text("dead_letter_file", "") or str(Path(spool_dir) / "dead-letter.lp"),
        batch_size=t.integer("batch_size", 5000, lo=1, hi=1_000_000),
        flush_interval_s=t.duration("flush_interval", 1.0, allow_zero=False),
        max_concurrent_writes=t.integer("max_concurrent_writes", 2, lo=1, hi=64),
        max_buffered_lines=t.integer("max_buffered_lines", 200_000, lo=1),
        timeout_s=t.duration("timeout", 10.0, allow_zero=False),
        gzip=t.flag("gzip", True),
        precision=precision,
        max_retry_delay_s=t.duration("max_retry_delay", 60.0, allow_zero=False),
    )
    t.finish()
    return cfg


def _default_spool_dir() -> str:
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return str(Path(base).expanduser() / "stationmon" / "spool")


def _subscription(t: _Table, problems: _Problems) -> SubscriptionConfig | None:
    topic = t.text("topic", None)
    if topic is None:
        problems.add(t.key("topic"), "missing: the topic or topic template to subscribe to")
        t.finish()
        return None
    _check_template(topic, t.key("topic"), problems)
    fmt = t.choice("format", PAYLOAD_FORMATS, "plain", "format")
    sub = SubscriptionConfig(
        topic=topic,
        format=fmt,
        value=t.text("value", "value"),
        time=t.text("time", ""),
        qos=t.integer("qos", 1, lo=0, hi=2),
        station=t.text("station", ""),
        loop=t.text("loop", ""),
        quantity=t.text("quantity", ""),
        sensor=t.text("sensor", ""),
    )
    if "{station}" not in topic and not sub.station:
        problems.add(t.key("topic"), 'has no {station} placeholder; add one or set station = "..."')
    if fmt == "plain" and "{quantity}" not in topic and not sub.quantity:
        problems.add(t.key("topic"), 'has no {quantity} placeholder; add one or set quantity = "..."')
    t.finish()
    return sub


def _check_template(topic: str, path: str, problems: _Problems) -> None:
    if not topic or topic.startswith("$share/"):
        problems.add(path, "must be a non-empty topic (use share_group for shared subscriptions)")
        return
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if level == "#" and i != len(levels) - 1:
            problems.add(path, f"'#' must be the last level in {topic!r}")
        elif level not in ("+", "#") and ("+" in level or "#" in level):
            problems.add(path, f"wildcards must fill a whole level in {topic!r}")
        for name in re.findall(r"\{([^}]*)\}", level):
            if name not in _TEMPLATE_FIELDS:
                problems.add(path, f"unknown placeholder {{{name}}}{_suggest(name, _TEMPLATE_FIELDS)}")
            elif level != "{" + name + "}":
                problems.add(path, f"placeholder {{{name}}} must fill a whole topic level in {topic!r}")


def _mqtt(root: _Table, problems: _Problems) -> MqttConfig | None:
    t = root.table("mqtt")
    if t is None:
        return None
    url = t.text("url", None)
    host, port, tls = "127.0.0.1", 1883, False
    if url is None:
        problems.add(t.key("url"), "missing: the broker URL, such as mqtt://127.0.0.1:1883")
        url = ""
    elif _check_url(url, t.key("url"), problems, ("mqtt", "mqtts", "tcp", "ssl")):
        parts = urlsplit(url)
        tls = parts.scheme in ("mqtts", "ssl")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (8883 if tls else 1883)
    subs = []
    for _, st in t.tables("subscriptions"):
        sub = _subscription(st, problems)
        if sub is not None:
            subs.append(sub)
    files = {}
    for k in ("ca_file", "cert_file", "key_file"):
        files[k] = t.text(k, "")
        if files[k] and not Path(files[k]).expanduser().is_file():
            problems.add(t.key(k), f"cannot read {files[k]}: no such file")
    if files["cert_file"] and not files["key_file"]:
        problems.add(t.key("key_file"), "missing: a client certificate needs its key")
    share_group = t.text("share_group", "")
    if share_group and not re.match(r"^[^/+#]+$", share_group):
        problems.add(t.key("share_group"), f"must be one topic level without wildcards, got {share_group!r}")
    username = t.text("username", "")
    password = t.secret("password")
    if password is not None and not username:
        problems.add(t.key("username"), "missing: a password needs a username")
    cfg = MqttConfig(
        url=url,
        host=host,
        port=port,
        tls=tls or bool(files["ca_file"]),
        username=username,
        password=password,
        client_id=t.text("client_id", "stationmon"),
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        keepalive_s=t.duration("keepalive", 30.0, allow_zero=False),
        qos=t.integer("qos", 1, lo=0, hi=2),
        protocol=t.choice("protocol", ("5", "3.1.1"), "5", "MQTT protocol version"),
        clean_start=t.flag("clean_start", False),
        session_expiry_s=t.duration("session_expiry", 7 * 86400.0),
        share_group=share_group,
        watchdog_s=t.duration("watchdog", 0.0),
        max_payload_bytes=t.integer("max_payload_bytes", 65536, lo=16),
        reconnect_max_s=t.duration("reconnect_max", 30.0, allow_zero=False),
        subscriptions=tuple(subs),
    )
    t.finish()
    return cfg


def _http(root: _Table, problems: _Problems) -> HttpConfig:
    t = root.table("http")
    if t is None:
        return HttpConfig()
    listen = t.text("listen", "127.0.0.1:9640")
    host, port = _split_listen(listen, t.key("listen"), problems)
    cfg = HttpConfig(
        listen=listen,
        host=host,
        port=port,
        token=t.secret("token"),
        history_window_s=t.duration("history_window", 6 * 3600.0, allow_zero=False),
        external_url=t.text("external_url", ""),
    )
    t.finish()
    return cfg


def _alerting(root: _Table, problems: _Problems) -> AlertingConfig:
    t = root.table("alerting")
    if t is None:
        return AlertingConfig()
    ams = []
    for _, at in t.tables("alertmanager"):
        url = at.text("url", None)
        if url is None:
            problems.add(at.key("url"), "missing: Alertmanager's URL, such as http://127.0.0.1:9093")
        elif _check_url(url, at.key("url"), problems, ("http", "https")):
            ams.append(
                AlertmanagerConfig(
                    url=url.rstrip("/"),
                    timeout_s=at.duration("timeout", 5.0, allow_zero=False),
                    resend_interval_s=at.duration("resend_interval", 60.0, allow_zero=False),
                    bearer_token=at.secret("bearer_token"),
                )
            )
        at.finish()
    hooks = []
    for _, wt in t.tables("webhook"):
        # A receiver's URL often carries its key (WeChat Work robots: ...?key=...): url_env / url_file
        # keep such a URL out of the file like any other secret.
        url = wt.text("url", None)
        wt.known.update({"url_env", "url_file"})
        secret_url = wt.secret("url") if url is None else None
        if url is not None and ("url_env" in wt.data or "url_file" in wt.data):
            problems.add(wt.key("url"), "give either url or url_env / url_file, not both")
            url = None
        elif url is None and secret_url is None and not {"url_env", "url_file"} & set(wt.data):
            problems.add(wt.key("url"), "missing: the receiver's URL (url, or url_env / url_file)")
        if secret_url is not None:
            url = secret_url.get()
            key = wt.key("url_env" if "url_env" in wt.data else "url_file")
            if not _check_url(url, key, problems, ("http", "https"), show=False):
                url = None
        elif url is not None and not _check_url(url, wt.key("url"), problems, ("http", "https")):
            url = None
        if url is not None:
            hooks.append(
                WebhookConfig(
                    url=url,
                    timeout_s=wt.duration("timeout", 5.0, allow_zero=False),
                    hmac_secret=wt.secret("hmac_secret"),
                    hmac_header=wt.text("hmac_header", "X-Stationmon-Signature"),
                    max_attempts=wt.integer("max_attempts", 0, lo=0),
                    send_resolved=wt.flag("send_resolved", True),
                )
            )
        wt.finish()
    mqtt = MqttAlertConfig()
    mt = t.table("mqtt")
    if mt is not None:
        mqtt = MqttAlertConfig(
            enabled=mt.flag("enabled", True),
            topic_prefix=mt.text("topic_prefix", "stationmon/alerts").rstrip("/"),
            qos=mt.integer("qos", 1, lo=0, hi=2),
        )
        mt.finish()
    cfg = AlertingConfig(
        alertmanager=tuple(ams),
        webhook=tuple(hooks),
        mqtt=mqtt,
        queue_size=t.integer("queue_size", 10000, lo=1),
        retry_max_s=t.duration("retry_max", 60.0, allow_zero=False),
    )
    t.finish()
    return cfg


def _modbus(t: _Table, problems: _Problems) -> ModbusLink:
    transport = t.choice("transport", TRANSPORTS, "tcp", "transport")
    serial_port = t.text("serial_port", "")
    if transport == "rtu" and not serial_port:
        problems.add(t.key("serial_port"), 'missing: transport = "rtu" needs a serial_port such as /dev/ttyUSB0')
    interval = t.duration("interval", 10.0, allow_zero=False)
    timeout = t.duration("timeout", 2.0, allow_zero=False)
    if timeout > interval:
        problems.add(t.key("timeout"), f"{timeout:g}s is longer than the interval ({interval:g}s)")
    cfg = ModbusLink(
        host=t.text("host", "127.0.0.1"),
        port=t.integer("port", 502, lo=1, hi=65535),
        device_id=t.integer("device_id", 1, lo=0, hi=255),
        interval_s=interval,
        timeout_s=timeout,
        byte_order=t.choice("byte_order", BYTE_ORDERS, "ABCD", "byte order"),
        transport=transport,
        serial_port=serial_port,
        baudrate=t.integer("baudrate", 9600, lo=300),
        parity=t.choice("parity", ("N", "E", "O"), "N", "parity"),
        stopbits=t.integer("stopbits", 1, lo=1, hi=2),
        bytesize=t.integer("bytesize", 8, lo=5, hi=8),
        max_registers_per_request=t.integer("max_registers_per_request", 125, lo=1, hi=125),
        max_gap=t.integer("max_gap", 10, lo=0, hi=124),
        one_request_per_point=t.flag("one_request_per_point", False),
        retries=t.integer("retries", 1, lo=0, hi=10),
        jitter_s=t.duration("jitter", -1.0) if t.has("jitter") else -1.0,
    )
    if "slave" in t.data:
        t.known.add("slave")
        problems.add(t.key("slave"), "unknown key (did you mean 'device_id'?)")
    t.finish()
    return cfg


def _loop(t: _Table, problems: _Problems) -> Loop | None:
    loop_id = t.text("id", None)
    if loop_id is None:
        problems.add(t.key("id"), "missing: every loop needs an id")
    elif not _ID_RE.match(loop_id):
        problems.add(t.key("id"), f"{loop_id!r} may only contain a-z, 0-9, '-' and '_'")
    emitter = t.choice("emitter", tuple(EMITTER_EXPONENTS), "radiator", "emitter")
    exponent = t.number("exponent", EMITTER_EXPONENTS[emitter], lo=1.0, hi=2.0)
    defaults = (50.0, 40.0) if emitter == "floor" else (75.0, 50.0)
    unset = [k for k in ("emitter", "design_supply", "design_return") if k not in t.data]
    if unset:
        problems.notices.append(
            f"{t.path}: {', '.join(unset)} not set; judged as a {emitter} loop designed for "
            f"{t.data.get('design_supply', defaults[0]):g}/{t.data.get('design_return', defaults[1]):g} °C"
        )
    supply = t.number("design_supply", defaults[0], lo=20.0, hi=150.0)
    ret = t.number("design_return", defaults[1], lo=15.0, hi=130.0)
    if supply <= ret:
        problems.add(t.key("design_return"), f"{ret:g} must be below design_supply ({supply:g})")
    cfg = Loop(
        id=loop_id or "",
        name=t.text("name", ""),
        emitter=emitter,
        design_supply=supply,
        design_return=ret,
        exponent=exponent,
        min_supply=t.number("min_supply", None, lo=0.0, hi=150.0),
        min_return=t.number("min_return", None, lo=0.0, hi=150.0),
    )
    t.finish()
    return cfg if loop_id else None


def _point(
    t: _Table, station_byte_order: str, loop_ids: set[str], has_modbus: bool, problems: _Problems
) -> Point | None:
    quantity = t.text("quantity", None)
    if quantity is None:
        problems.add(t.key("quantity"), "missing: what the point measures, such as supply_temp")
    elif not _QUANTITY_RE.match(quantity):
        problems.add(t.key("quantity"), f"{quantity!r} must be snake_case, such as supply_temp")
    loop = t.text("loop", None)
    if loop is not None and loop not in loop_ids:
        known = ", ".join(sorted(loop_ids)) or "none defined"
        problems.add(t.key("loop"), f"unknown loop {loop!r} (this station's loops: {known}){_suggest(loop, loop_ids)}")
    address = t.integer("address", None, lo=0, hi=65535)
    topic = t.text("topic", None)
    register = t.choice("register", REGISTER_TYPES, "holding", "register type")
    dtype = t.choice("type", DATA_TYPES, "float32", "type")
    byte_order = t.choice("byte_order", BYTE_ORDERS, station_byte_order, "byte order")
    if address is None and topic is None and "address" not in t.data and "topic" not in t.data:
        problems.add(
            t.key("address"),
            "missing: a Modbus point needs an address, an MQTT point needs a topic",
        )
    if address is not None and topic is not None:
        problems.add(t.key("topic"), "a point is either Modbus (address) or MQTT (topic), not both")
    if address is not None and not has_modbus:
        problems.add(t.key("address"), "this station has no [stations.modbus] table to read it from")
    if address is not None and address + REGISTER_WIDTH[dtype] - 1 > 65535:
        problems.add(t.key("address"), f"{dtype} at {address} runs past register 65535")
    if topic is not None and (not topic or any(c in topic for c in "+#{}")):
        problems.add(t.key("topic"), f"must be a full topic without wildcards or placeholders, got {topic!r}")
    fmt = t.choice("format", ("plain", "json"), "plain", "format")
    cfg = Point(
        quantity=quantity or "",
        loop=loop,
        sensor=t.text("sensor", None),
        register=register,
        address=address,
        type=dtype,
        byte_order=byte_order,
        scale=t.number("scale", 1.0),
        offset=t.number("offset", 0.0),
        topic=topic,
        format=fmt,
        value_key=t.text("value", "value"),
        time_key=t.text("time", ""),
    )
    t.finish()
    return cfg if quantity else None


def _check_points(station_key: str, points: list[tuple[int, Point]], problems: _Problems) -> None:
    """Quantities at the level the rules read them from, no series twice, near-misses pointed out."""
    seen: dict[tuple[str | None, str, str | None], int] = {}
    for i, p in points:
        key = f"{station_key}.points[{i}]"
        if p.quantity in STATION_QUANTITIES and p.loop is not None:
            problems.add(f"{key}.loop", f"{p.quantity} belongs to the station, not to a loop: remove loop")
        elif p.quantity in LOOP_QUANTITIES and p.loop is None:
            problems.notices.append(f"{key}.loop: not set: {p.quantity} is stored, but no loop rule judges it")
        if p.sensor is not None and p.quantity != "indoor_temp":
            problems.add(f"{key}.sensor", f"only indoor_temp points name a sensor, not {p.quantity}")
        series = (p.loop, p.quantity, p.sensor)
        if series in seen:
            problems.add(f"{key}.quantity", f"{p.quantity} of this loop is already read by points[{seen[series]}]")
        else:
            seen[series] = i
        if p.quantity not in CANONICAL_QUANTITIES:
            hint = _suggest(p.quantity, sorted(CANONICAL_QUANTITIES))
            if hint:
                problems.notices.append(f"{key}.quantity: {p.quantity!r} is not a canonical quantity{hint}")


def _check_overlaps(station_key: str, points: list[tuple[int, Point]], problems: _Problems) -> None:
    for register in REGISTER_TYPES:
        spans = sorted(
            (p.address, p.address + p.width - 1, i)
            for i, p in points
            if p.address is not None and p.register == register
        )
        for (a_lo, a_hi, a_i), (b_lo, b_hi, b_i) in itertools.pairwise(spans):
            if b_lo <= a_hi:
                problems.add(
                    f"{station_key}.points[{b_i}].address",
                    f"{register} registers {b_lo}..{b_hi} overlap points[{a_i}] ({a_lo}..{a_hi})",
                )


def _station(t: _Table, problems: _Problems) -> Station | None:
    sid = t.text("id", None)
    if sid is None:
        problems.add(t.key("id"), "missing: every station needs an id")
    elif not _ID_RE.match(sid):
        problems.add(t.key("id"), f"{sid!r} may only contain a-z, 0-9, '-' and '_'")
    mt = t.table("modbus")
    modbus = _modbus(mt, problems) if mt is not None else None
    loops: list[Loop] = []
    seen_loops: dict[str, int] = {}
    for i, lt in t.tables("loops"):
        loop = _loop(lt, problems)
        if loop is None:
            continue
        if loop.id in seen_loops:
            problems.add(lt.key("id"), f"duplicate loop id {loop.id!r} (also loops[{seen_loops[loop.id]}])")
            continue
        seen_loops[loop.id] = i
        loops.append(loop)
    byte_order = modbus.byte_order if modbus else "ABCD"
    points: list[tuple[int, Point]] = []
    for i, pt in t.tables("points"):
        point = _point(pt, byte_order, set(seen_loops), modbus is not None, problems)
        if point is not None:
            points.append((i, point))
    _check_points(t.path, points, problems)
    _check_overlaps(t.path, points, problems)
    cfg = Station(
        id=sid or "",
        name=t.text("name", ""),
        district=t.text("district", ""),
        modbus=modbus,
        loops=tuple(loops),
        points=tuple(p for _, p in points),
    )
    t.finish()
    return cfg if sid else None


def _mmdd(t: _Table, name: str, default: tuple[int, int]) -> tuple[int, int]:
    value = t.text(name, None)
    if value is None:
        return default
    m = _MMDD_RE.match(value)
    if not m or not (1 <= int(m[1]) <= 12 and 1 <= int(m[2]) <= _DAYS_IN_MONTH[int(m[1]) - 1]):
        t.problems.add(t.key(name), f'expected a date as MM-DD such as "10-20", got {value!r}')
        return default
    return int(m[1]), int(m[2])


def _rules(root: _Table, problems: _Problems) -> RulesSettings:
    t = root.table("rules") or _Table({}, "rules", problems)
    d = RulesSettings()
    base = RulesSettings(
        evaluate_every_s=t.duration("evaluate_every", d.evaluate_every_s, allow_zero=False),
        for_s=t.duration("for", d.for_s),
        clear_for_s=t.duration("clear_for", d.clear_for_s),
        margin=t.number("margin", d.margin, lo=0.0, hi=30.0),
        offline_after_s=t.duration("offline_after", d.offline_after_s, allow_zero=False),
        season_start=_mmdd(t, "season_start", d.season_start),
        season_end=_mmdd(t, "season_end", d.season_end),
        escalate_major_after_s=t.duration("escalate_major_after", d.escalate_major_after_s, allow_zero=False),
        escalate_critical_after_s=t.duration("escalate_critical_after", d.escalate_critical_after_s, allow_zero=False),
        outdoor_smoothing_s=t.duration("outdoor_smoothing", d.outdoor_smoothing_s),
        state_file=t.text("state_file", d.state_file),
    )
    if base.escalate_critical_after_s <= base.escalate_major_after_s:
        problems.add(t.key("escalate_critical_after"), "must be later than escalate_major_after")
    rules = {name: _rule(t, name, base.rule(name), problems) for name in RULE_NAMES}
    # unknown rule tables
    for name in list(t.data):
        if isinstance(t.data[name], dict) and name not in RULE_NAMES and name not in t.known:
            t.known.add(name)
            problems.add(t.key(name), f"unknown rule{_suggest(name, RULE_NAMES)} (rules: {', '.join(RULE_NAMES)})")
    t.finish()
    return replace(base, rules=rules)


def _rule(t: _Table, name: str, d: RuleSettings, problems: _Problems) -> RuleSettings:
    """One `[rules.<name>]` table over the rule's defaults `d`; rule-specific keys only where they apply."""
    rt = t.table(name) or _Table({}, t.key(name), problems)
    specific = RULE_OPTIONS.get(name, ())
    general = replace(
        d,
        enabled=rt.flag("enabled", d.enabled),
        for_s=rt.duration("for", d.for_s),
        clear_for_s=rt.duration("clear_for", d.clear_for_s),
        margin=rt.number("margin", d.margin, lo=0.0, hi=30.0),
        severity=rt.choice("severity", SEVERITIES, d.severity, "severity"),
    )
    readers: dict[str, tuple[str, Any]] = {
        "min_sensors": ("min_sensors", lambda: rt.integer("min_sensors", d.min_sensors, lo=1)),
        "min_share": ("min_share", lambda: rt.number("min_share", d.min_share, lo=0.0, hi=1.0)),
        "ratio": ("ratio", lambda: rt.number("ratio", d.ratio, lo=0.0)),
        "min_expected_delta_t": (
            "min_expected_delta_t",
            lambda: rt.number("min_expected_delta_t", d.min_expected_delta_t, lo=0.0),
        ),
        "flatline_window": ("flatline_window_s", lambda: rt.duration("flatline_window", d.flatline_window_s)),
        "flatline_tolerance": (
            "flatline_tolerance",
            lambda: rt.number("flatline_tolerance", d.flatline_tolerance, lo=0.0),
        ),
        "max_rate_per_min": ("max_rate_per_min", lambda: rt.number("max_rate_per_min", d.max_rate_per_min, lo=0.0)),
    }
    settings = replace(general, **{attr: read() for key, (attr, read) in readers.items() if key in specific})
    rt.finish()
    return settings


def _simulator(root: _Table, stations: dict[str, Station], problems: _Problems) -> SimulatorConfig:
    t = root.table("simulator")
    if t is None:
        return SimulatorConfig()
    faults = []
    for _, ft in t.tables("faults"):
        sid = ft.text("station", None)
        loop = ft.text("loop", None)
        kind = ft.choice("kind", FAULT_KINDS, "", "fault kind")
        if "kind" not in ft.data:
            problems.add(ft.key("kind"), f"missing: one of {', '.join(FAULT_KINDS)}")
        if sid is None:
            problems.add(ft.key("station"), "missing: the station id the fault applies to")
        elif sid not in stations:
            problems.add(ft.key("station"), f"unknown station {sid!r}{_suggest(sid, stations)}")
        elif loop is not None and loop not in {lp.id for lp in stations[sid].loops}:
            problems.add(ft.key("loop"), f"unknown loop {loop!r} of station {sid!r}")
        if kind and kind != "offline" and loop is None:
            problems.add(ft.key("loop"), f"missing: a {kind} fault needs the loop it applies to")
        fault = FaultConfig(
            station=sid or "",
            kind=kind,
            loop=loop,
            start_s=ft.duration("start", 0.0),
            duration_s=ft.duration("duration", 600.0, allow_zero=False),
        )
        ft.finish()
        if sid and kind:
            faults.append(fault)
    cfg = SimulatorConfig(
        outdoor_temp=t.number("outdoor_temp", None, lo=-50.0, hi=45.0),
        seed=t.integer("seed", 1),
        noise=t.number("noise", 0.05, lo=0.0, hi=5.0),
        publish_interval_s=t.duration("publish_interval", 5.0, allow_zero=False),
        indoor_sensors_per_loop=t.integer("indoor_sensors_per_loop", 0, lo=0, hi=100),
        faults=tuple(faults),
    )
    t.finish()
    return cfg


# ----------------------------------------------------------------------------------------------------
# Entry points


def parse_config(data: Mapping[str, Any], path: str = "<config>", *, require_influxdb: bool = True) -> Config:
    """Validate parsed TOML; raise ConfigError with every problem found."""
    problems = _Problems(Path(path).name if path != "<config>" else path)
    notices: list[str] = []
    root = _Table(data, "", problems)
    site = _site(root, notices)
    influx = _influx(root, problems, notices, require_influxdb)
    mqtt = _mqtt(root, problems)
    http = _http(root, problems)
    alerting = _alerting(root, problems)
    if alerting.mqtt.enabled and mqtt is None:
        problems.add("alerting.mqtt", "alerts over MQTT need an [mqtt] table with the broker's url")
    stations: list[Station] = []
    seen: dict[str, int] = {}
    if "stations" not in data:
        root.known.add("stations")
        problems.add("stations", "missing: at least one [[stations]] with an id")
    for i, st in root.tables("stations"):
        station = _station(st, problems)
        if station is None:
            continue
        if station.id in seen:
            problems.add(st.key("id"), f"duplicate station id {station.id!r} (also stations[{seen[station.id]}])")
            continue
        seen[station.id] = i
        stations.append(station)
        if station.mqtt_points and mqtt is None:
            problems.add(st.key("points"), "has MQTT points (topic) but there is no [mqtt] table")
        if station.modbus and station.modbus.port == 502 and "port" not in st.data.get("modbus", {}):
            notices.append(f"stations[{i}].modbus.port: not set; using 502")
    rules = _rules(root, problems)
    simulator = _simulator(root, {s.id: s for s in stations}, problems)
    state_dir = root.text("state_dir", "")
    root.finish()
    if problems.lines:
        raise ConfigError(problems.lines)
    notices.extend(problems.notices)
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
        state_dir=state_dir or str(Path(influx.spool_dir).parent),
        notices=tuple(notices),
    )


def parse_config_text(text: str, path: str = "<config>", *, require_influxdb: bool = True) -> Config:
    """Parse TOML text and validate it."""
    name = Path(path).name if path != "<config>" else path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    return parse_config(data, path, require_influxdb=require_influxdb)


def load_config(path: str | os.PathLike[str], *, require_influxdb: bool = True) -> Config:
    """Read and validate a TOML config file; raise ConfigError with every problem found."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p.name}: cannot read config: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p.name}: not UTF-8 text"]) from None
    return parse_config_text(text, str(p), require_influxdb=require_influxdb)


__all__ += ["parse_config_text"]
