"""The servers stationmon talks to: `[influxdb]`, `[mqtt]` (with its subscriptions), `[http]`, `[alerting]`."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from stationmon.config.reader import Problems, Table, check_url, split_listen, suggest
from stationmon.config.schema import (
    FSYNC_POLICIES,
    INFLUX_APIS,
    INFLUX_PRECISIONS,
    MQTT_PROTOCOLS,
    MQTT_TLS_PORT,
    AlertingConfig,
    AlertmanagerConfig,
    HttpConfig,
    InfluxConfig,
    MqttAlertConfig,
    MqttConfig,
    WebhookConfig,
)
from stationmon.config.secrets import read_secret
from stationmon.domain.payloads import PAYLOAD_FORMATS
from stationmon.domain.topics import TEMPLATE_FIELDS, Subscription

__all__ = ["HTTP_LISTEN_ENV", "read_alerting", "read_http", "read_influxdb", "read_mqtt"]

HTTP_LISTEN_ENV = "STATIONMON_HTTP_LISTEN"  # overrides [http] listen: how a container is told to listen on 0.0.0.0

_HTTP = ("http", "https")
_MQTT_SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")
_MQTT_TLS_SCHEMES = ("mqtts", "ssl")
_QOS = (0, 2)
_V1_KEYS = ("database", "retention_policy", "username", "password_env", "password_file")
_V2_KEYS = ("org", "bucket", "token_env", "token_file")
_SHARE_GROUP_RE = re.compile(r"^[^/+#]+$")


def read_influxdb(root: Table, require: bool) -> InfluxConfig:
    """`[influxdb]`; without it (the demo) readings stay in the spool."""
    t = root.table("influxdb")
    if t is None:
        if require:
            root.add("influxdb", "missing: an [influxdb] table with url is needed to store readings")
        return InfluxConfig()
    d = InfluxConfig()
    server = _influx_server(t, require)
    spool_dir = t.text("spool_dir", "")
    if not spool_dir:
        spool_dir = d.spool_dir
        t.problems.notices.append(f"influxdb.spool_dir: not set; spooling to {spool_dir}")
    precision = t.choice("precision", INFLUX_PRECISIONS, d.precision, "precision")
    cfg = replace(
        server,
        spool_dir=spool_dir,
        spool_max_bytes=t.integer("spool_max_bytes", d.spool_max_bytes, lo=4096),
        spool_fsync=t.choice("spool_fsync", FSYNC_POLICIES, d.spool_fsync, "fsync policy"),
        dead_letter_file=t.text("dead_letter_file", d.dead_letter_file) or str(Path(spool_dir) / "dead-letter.lp"),
        batch_size=t.integer("batch_size", d.batch_size, lo=1, hi=1_000_000),
        flush_interval_s=t.duration("flush_interval", d.flush_interval_s, allow_zero=False),
        max_concurrent_writes=t.integer("max_concurrent_writes", d.max_concurrent_writes, lo=1, hi=64),
        max_buffered_lines=t.integer("max_buffered_lines", d.max_buffered_lines, lo=1),
        timeout_s=t.duration("timeout", d.timeout_s, allow_zero=False),
        gzip=t.flag("gzip", d.gzip),
        precision=precision,
        max_retry_delay_s=t.duration("max_retry_delay", d.max_retry_delay_s, allow_zero=False),
    )
    t.finish()
    return cfg


def _influx_server(t: Table, require: bool) -> InfluxConfig:
    """The URL, API version and credentials, checked against each other."""
    d = InfluxConfig()
    url = t.text("url", None)
    if url is None:
        if require:
            t.add("url", "missing: the InfluxDB URL, such as http://127.0.0.1:8086")
    elif not check_url(url, t.key("url"), t.problems, _HTTP):
        url = None
    v1_keys = [k for k in _V1_KEYS if k in t.data]
    v2_keys = [k for k in _V2_KEYS if k in t.data]
    if t.has("api"):
        api = t.choice("api", INFLUX_APIS, d.api, "API")
    else:
        api = "v1" if v1_keys and not v2_keys else d.api
        t.problems.notices.append(f'influxdb.api: not set; using "{api}"')
    server = InfluxConfig(
        url=url,
        api=api,
        org=t.text("org", d.org),
        bucket=t.text("bucket", d.bucket),
        database=t.text("database", d.database),
        retention_policy=t.text("retention_policy", d.retention_policy),
        username=t.text("username", d.username),
        token=read_secret(t, "token"),
        password=read_secret(t, "password"),
    )
    if api == "v2":
        for k in v1_keys:
            t.add(k, 'only for api = "v1" (api is "v2": use org, bucket and token_env)')
        if not server.org:
            t.add("org", 'missing: api = "v2" needs org, bucket and token_env (or token_file)')
        if not server.bucket:
            t.add("bucket", 'missing: api = "v2" needs a bucket')
        if server.token is None and not ("token_env" in t.data or "token_file" in t.data):
            t.add("token_env", 'missing: api = "v2" needs a token (token_env or token_file)')
    else:
        for k in v2_keys:
            t.add(k, 'only for api = "v2" (api is "v1": use database, username, password_env)')
        if not server.database:
            t.add("database", 'missing: api = "v1" needs a database')
        if server.password is not None and not server.username:
            t.add("username", "missing: a password needs a username")
    return server


def read_mqtt(root: Table) -> MqttConfig | None:
    """`[mqtt]`, or None: no MQTT unless configured."""
    t = root.table("mqtt")
    if t is None:
        return None
    d = MqttConfig(url="")
    broker = _broker(t)
    subs = [sub for _, st in t.tables("subscriptions") if (sub := _subscription(st)) is not None]
    files = {k: _tls_file(t, k) for k in ("ca_file", "cert_file", "key_file")}
    if files["cert_file"] and not files["key_file"]:
        t.add("key_file", "missing: a client certificate needs its key")
    share_group = t.text("share_group", d.share_group)
    if share_group and not _SHARE_GROUP_RE.match(share_group):
        t.add("share_group", f"must be one topic level without wildcards, got {share_group!r}")
    username = t.text("username", d.username)
    password = read_secret(t, "password")
    if password is not None and not username:
        t.add("username", "missing: a password needs a username")
    cfg = replace(
        broker,
        tls=broker.tls or bool(files["ca_file"]),
        username=username,
        password=password,
        # "{hostname}": one config for every replica (a StatefulSet's pods), each its own MQTT session
        client_id=t.text("client_id", d.client_id).replace("{hostname}", socket.gethostname()),
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        keepalive_s=t.duration("keepalive", d.keepalive_s, allow_zero=False),
        qos=t.integer("qos", d.qos, lo=_QOS[0], hi=_QOS[1]),
        protocol=t.choice("protocol", MQTT_PROTOCOLS, d.protocol, "MQTT protocol version"),
        clean_start=t.flag("clean_start", d.clean_start),
        session_expiry_s=t.duration("session_expiry", d.session_expiry_s),
        share_group=share_group,
        watchdog_s=t.duration("watchdog", d.watchdog_s),
        max_payload_bytes=t.integer("max_payload_bytes", d.max_payload_bytes, lo=16),
        reconnect_max_s=t.duration("reconnect_max", d.reconnect_max_s, allow_zero=False),
        subscriptions=tuple(subs),
        max_sensors_per_loop=t.integer("max_sensors_per_loop", d.max_sensors_per_loop, lo=1, hi=1_000_000),
        max_quantities_per_loop=t.integer("max_quantities_per_loop", d.max_quantities_per_loop, lo=1, hi=10_000),
    )
    t.finish()
    return cfg


def _broker(t: Table) -> MqttConfig:
    """The broker's url and the host, port and TLS it implies."""
    url = t.text("url", None)
    if url is None:
        t.add("url", "missing: the broker URL, such as mqtt://127.0.0.1:1883")
        return MqttConfig(url="")
    if not check_url(url, t.key("url"), t.problems, _MQTT_SCHEMES):
        return MqttConfig(url=url)
    d = MqttConfig(url=url)
    parts = urlsplit(url)
    tls = parts.scheme in _MQTT_TLS_SCHEMES
    return replace(d, host=parts.hostname or d.host, port=parts.port or (MQTT_TLS_PORT if tls else d.port), tls=tls)


def _tls_file(t: Table, key: str) -> str:
    path = t.text(key, "")
    if path and not Path(path).expanduser().is_file():
        t.add(key, f"cannot read {path}: no such file")
    return path


def _subscription(t: Table) -> Subscription | None:
    """One `[[mqtt.subscriptions]]`: a template whose placeholders and fixed fields say where readings go."""
    topic = t.text("topic", None)
    if topic is None:
        t.add("topic", "missing: the topic or topic template to subscribe to")
        t.finish()
        return None
    _check_template(t, topic)
    d = Subscription(topic="")
    fmt = t.choice("format", PAYLOAD_FORMATS, d.format, "format")
    sub = Subscription(
        topic=topic,
        format=fmt,
        value=t.text("value", d.value),
        time=t.text("time", d.time),
        qos=t.integer("qos", d.qos, lo=_QOS[0], hi=_QOS[1]),
        station=t.text("station", d.station),
        loop=t.text("loop", d.loop),
        quantity=t.text("quantity", d.quantity),
        sensor=t.text("sensor", d.sensor),
    )
    if "{station}" not in topic and not sub.station:
        t.add("topic", 'has no {station} placeholder; add one or set station = "..."')
    if fmt == "plain" and "{quantity}" not in topic and not sub.quantity:
        t.add("topic", 'has no {quantity} placeholder; add one or set quantity = "..."')
    t.finish()
    return sub


def _check_template(t: Table, topic: str) -> None:
    """MQTT wildcards and our placeholders each fill whole levels."""
    if not topic or topic.startswith("$share/"):
        t.add("topic", "must be a non-empty topic (use share_group for shared subscriptions)")
        return
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if level == "#" and i != len(levels) - 1:
            t.add("topic", f"'#' must be the last level in {topic!r}")
        elif level not in ("+", "#") and ("+" in level or "#" in level):
            t.add("topic", f"wildcards must fill a whole level in {topic!r}")
        for name in re.findall(r"\{([^}]*)\}", level):
            if name not in TEMPLATE_FIELDS:
                t.add("topic", f"unknown placeholder {{{name}}}{suggest(name, TEMPLATE_FIELDS)}")
            elif level != "{" + name + "}":
                t.add("topic", f"placeholder {{{name}}} must fill a whole topic level in {topic!r}")


def _listen(t: Table | None, problems: Problems) -> tuple[str, str, int]:
    """`[http] listen`, or STATIONMON_HTTP_LISTEN when set (a container sets 0.0.0.0:9640): text, host, port."""
    d = HttpConfig()
    listen = t.text("listen", d.listen) if t is not None else d.listen
    key = t.key("listen") if t is not None else "http.listen"
    from_env = os.environ.get(HTTP_LISTEN_ENV, "").strip()
    if from_env:
        if from_env != listen:
            problems.notices.append(f"{key}: {HTTP_LISTEN_ENV} overrides it: {from_env}")
        listen, key = from_env, f"{key} ({HTTP_LISTEN_ENV})"
    host, port = split_listen(listen, key, problems) or (d.host, d.port)
    return listen, host, port


def read_http(root: Table) -> HttpConfig:
    """`[http]`: where the status page listens (the environment's STATIONMON_HTTP_LISTEN overrides `listen`)."""
    d = HttpConfig()
    t = root.table("http")
    if t is None:
        listen, host, port = _listen(None, root.problems)
        return HttpConfig(listen=listen, host=host, port=port)
    listen, host, port = _listen(t, t.problems)
    cfg = HttpConfig(
        listen=listen,
        host=host,
        port=port,
        token=read_secret(t, "token"),
        history_window_s=t.duration("history_window", d.history_window_s, allow_zero=False),
        external_url=t.text("external_url", d.external_url),
        grafana_url=_grafana_url(t),
    )
    t.finish()
    return cfg


def _grafana_url(t: Table) -> str:
    """`[http] grafana_url`: Grafana's base URL (http or https, a path prefix allowed), without its trailing /."""
    url = t.text("grafana_url", "").strip()
    if not url or not check_url(url, t.key("grafana_url"), t.problems, _HTTP):
        return ""
    if "?" in url or "#" in url:  # the station link appends /d/<uid>?var-station=...
        t.add(
            "grafana_url",
            f"expected Grafana's base URL without ?query or #fragment, such as http://grafana:3000, got {url!r}",
        )
        return ""
    return url.rstrip("/")


def read_alerting(root: Table, has_mqtt: bool) -> AlertingConfig:
    """`[alerting]`: Alertmanagers, webhooks and MQTT alerts (which need `[mqtt]`)."""
    d = AlertingConfig()
    t = root.table("alerting")
    if t is None:
        return d
    ams = [am for _, at in t.tables("alertmanager") if (am := _alertmanager(at)) is not None]
    hooks = [hook for _, wt in t.tables("webhook") if (hook := _webhook(wt)) is not None]
    mt = t.table("mqtt")
    mqtt = _mqtt_alerts(mt) if mt is not None else d.mqtt
    cfg = AlertingConfig(
        alertmanager=tuple(ams),
        webhook=tuple(hooks),
        mqtt=mqtt,
        queue_size=t.integer("queue_size", d.queue_size, lo=1),
        retry_max_s=t.duration("retry_max", d.retry_max_s, allow_zero=False),
    )
    t.finish()
    if mqtt.enabled and not has_mqtt:
        root.add("alerting.mqtt", "alerts over MQTT need an [mqtt] table with the broker's url")
    return cfg


def _alertmanager(t: Table) -> AlertmanagerConfig | None:
    url = t.text("url", None)
    cfg = None
    if url is None:
        t.add("url", "missing: Alertmanager's URL, such as http://127.0.0.1:9093")
    elif check_url(url, t.key("url"), t.problems, _HTTP):
        d = AlertmanagerConfig(url="")
        cfg = AlertmanagerConfig(
            url=url.rstrip("/"),
            timeout_s=t.duration("timeout", d.timeout_s, allow_zero=False),
            resend_interval_s=t.duration("resend_interval", d.resend_interval_s, allow_zero=False),
            bearer_token=read_secret(t, "bearer_token"),
        )
    t.finish()
    return cfg


def _webhook(t: Table) -> WebhookConfig | None:
    url = _webhook_url(t)
    d = WebhookConfig(url="")
    # read (and check) the other keys even without a URL: an unset url_env is only a warning in check-config
    cfg = WebhookConfig(
        url=url or "",
        timeout_s=t.duration("timeout", d.timeout_s, allow_zero=False),
        hmac_secret=read_secret(t, "hmac_secret"),
        hmac_header=t.text("hmac_header", d.hmac_header),
        max_attempts=t.integer("max_attempts", d.max_attempts, lo=0),
        send_resolved=t.flag("send_resolved", d.send_resolved),
    )
    t.finish()
    return cfg if url is not None else None


def _webhook_url(t: Table) -> str | None:
    """`url`, or a URL kept out of the file by url_env / url_file (WeChat Work robots: ...?key=...)."""
    url = t.text("url", None)
    secret_keys = {"url_env", "url_file"} & set(t.data)
    t.known.update({"url_env", "url_file"})
    if url is not None:
        if secret_keys:
            t.add("url", "give either url or url_env / url_file, not both")
            return None
        return url if check_url(url, t.key("url"), t.problems, _HTTP) else None
    secret = read_secret(t, "url")
    if secret is None:
        if not secret_keys:
            t.add("url", "missing: the receiver's URL (url, or url_env / url_file)")
        return None
    key = t.key("url_env" if "url_env" in t.data else "url_file")
    return secret.get() if check_url(secret.get(), key, t.problems, _HTTP, show=False) else None


def _mqtt_alerts(t: Table) -> MqttAlertConfig:
    d = MqttAlertConfig()
    cfg = MqttAlertConfig(
        enabled=t.flag("enabled", True),  # the table's presence asks for MQTT alerts
        topic_prefix=t.text("topic_prefix", d.topic_prefix).rstrip("/"),
        qos=t.integer("qos", d.qos, lo=_QOS[0], hi=_QOS[1]),
    )
    t.finish()
    return cfg
