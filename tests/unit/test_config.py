"""Config validation: every bad config names its key path, all problems are reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stationmon.cli import main
from stationmon.config import load_config, parse_config_text, parse_duration
from stationmon.errors import ConfigError

BASE = """
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "stationmon"
spool_dir = "/tmp/stationmon-test-spool"

[[stations]]
id = "s1"
district = "道里区"
  [stations.modbus]
  host = "127.0.0.1"
  port = 1502
  [[stations.loops]]
  id = "sec1"
  emitter = "floor"
  design_supply = 50.0
  design_return = 40.0
  [[stations.points]]
  loop = "sec1"
  quantity = "supply_temp"
  address = 100
  type = "float32"
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(textwrap.dedent(text), "plant.toml")
    return info.value.problems


# (name, config text, expected problem line: "plant.toml: <key path>: <start of message>")
BAD = [
    ("toml syntax", BASE + "\n[site\n", "plant.toml: TOML syntax error: "),
    ("unknown top-level key", 'colour = "red"\n' + BASE, "plant.toml: colour: unknown key"),
    (
        "unknown key with suggestion",
        BASE.replace('database = "stationmon"', 'databse = "stationmon"\ndatabase = "x"'),
        "plant.toml: influxdb.databse: unknown key (did you mean 'database'?)",
    ),
    (
        "misspelt type",
        BASE.replace('type = "float32"', 'type = "flot32"'),
        "plant.toml: stations[0].points[0].type: unknown type 'flot32' (expected one of int16, uint16, int32, "
        "uint32, float32, float64) (did you mean 'float32'?)",
    ),
    (
        "bad byte order",
        BASE.replace("port = 1502", 'port = 1502\n  byte_order = "ABDC"'),
        "plant.toml: stations[0].modbus.byte_order: unknown byte order 'ABDC'",
    ),
    (
        "point byte order",
        BASE.replace('type = "float32"', 'type = "float32"\n  byte_order = "little"'),
        "plant.toml: stations[0].points[0].byte_order: unknown byte order 'little'",
    ),
    (
        "wrong type for port",
        BASE.replace("port = 1502", 'port = "1502"'),
        "plant.toml: stations[0].modbus.port: expected an integer, got string '1502'",
    ),
    (
        "port out of range",
        BASE.replace("port = 1502", "port = 70000"),
        "plant.toml: stations[0].modbus.port: 70000 is out of range (expected 1..65535)",
    ),
    (
        "bad duration",
        BASE.replace("port = 1502", 'port = 1502\n  interval = "10 sec"'),
        "plant.toml: stations[0].modbus.interval: bad duration '10 sec'",
    ),
    (
        "duration as a number",
        BASE + "[rules]\nevaluate_every = 10\n",
        "plant.toml: rules.evaluate_every: expected a duration string",
    ),
    (
        "timeout longer than interval",
        BASE.replace("port = 1502", 'port = 1502\n  interval = "1s"\n  timeout = "5s"'),
        "plant.toml: stations[0].modbus.timeout: 5s is longer than the interval (1s)",
    ),
    (
        "duplicate station id",
        BASE + '[[stations]]\nid = "s1"\n',
        "plant.toml: stations[1].id: duplicate station id 's1' (also stations[0])",
    ),
    (
        "bad station id",
        BASE + '[[stations]]\nid = "Station 2"\n',
        "plant.toml: stations[1].id: 'Station 2' may only",
    ),
    ("station without id", BASE + '[[stations]]\nname = "x"\n', "plant.toml: stations[1].id: missing"),
    (
        "duplicate loop id",
        BASE.replace("  [[stations.points]]", '  [[stations.loops]]\n  id = "sec1"\n  [[stations.points]]', 1),
        "plant.toml: stations[0].loops[1].id: duplicate loop id 'sec1' (also loops[0])",
    ),
    (
        "point names an unknown loop",
        BASE.replace('loop = "sec1"', 'loop = "sec2"'),
        "plant.toml: stations[0].points[0].loop: unknown loop 'sec2' (this station's loops: sec1)",
    ),
    (
        "overlapping registers",
        BASE + '  [[stations.points]]\n  loop = "sec1"\n  quantity = "return_temp"\n  address = 101\n',
        "plant.toml: stations[0].points[1].address: holding registers 101..102 overlap points[0] (100..101)",
    ),
    (
        "modbus point without address",
        BASE + '  [[stations.points]]\n  loop = "sec1"\n  quantity = "return_temp"\n',
        "plant.toml: stations[0].points[1].address: missing: a Modbus point needs an address",
    ),
    (
        "mqtt point without mqtt section",
        BASE + '  [[stations.points]]\n  loop = "sec1"\n  quantity = "flow"\n  topic = "a/b"\n',
        "plant.toml: stations[0].points: has MQTT points (topic) but there is no [mqtt] table",
    ),
    (
        "point with both address and topic",
        BASE.replace("address = 100", 'address = 100\n  topic = "x/y"'),
        "plant.toml: stations[0].points[0].topic: a point is either Modbus (address) or MQTT (topic), not both",
    ),
    (
        "unset secret env",
        BASE.replace(
            'database = "stationmon"',
            'database = "stationmon"\nusername = "u"\npassword_env = "NOPE_UNSET_1"',
        ),
        "plant.toml: influxdb.password_env: environment variable NOPE_UNSET_1 is not set",
    ),
    (
        "unreadable secret file",
        BASE.replace(
            'database = "stationmon"',
            'database = "stationmon"\nusername = "u"\npassword_file = "/nonexistent/pw"',
        ),
        "plant.toml: influxdb.password_file: cannot read /nonexistent/pw",
    ),
    (
        "secret in the file",
        BASE.replace('database = "stationmon"', 'database = "stationmon"\nusername = "u"\npassword = "hunter2"'),
        "plant.toml: influxdb.password: secrets do not belong in the config file",
    ),
    (
        "v2 setting with api v1",
        BASE.replace('database = "stationmon"', 'database = "stationmon"\nbucket = "b"'),
        'plant.toml: influxdb.bucket: only for api = "v2"',
    ),
    (
        "v1 setting with api v2",
        BASE.replace('api = "v1"', 'api = "v2"\norg = "o"\nbucket = "b"\ntoken_env = "HOME"'),
        'plant.toml: influxdb.database: only for api = "v1"',
    ),
    (
        "v2 without bucket",
        BASE.replace('api = "v1"\ndatabase = "stationmon"', 'api = "v2"\norg = "o"\ntoken_env = "HOME"'),
        'plant.toml: influxdb.bucket: missing: api = "v2" needs a bucket',
    ),
    (
        "v1 without database",
        BASE.replace('database = "stationmon"\n', ""),
        'plant.toml: influxdb.database: missing: api = "v1" needs a database',
    ),
    ("unknown api", BASE.replace('api = "v1"', 'api = "v3"'), "plant.toml: influxdb.api: unknown API 'v3'"),
    (
        "bad influx url",
        BASE.replace('url = "http://127.0.0.1:8086"', 'url = "127.0.0.1:8086"'),
        "plant.toml: influxdb.url: expected a URL starting with http:// or https://",
    ),
    (
        "no influxdb",
        BASE.split("[[stations]]")[0].replace("[influxdb]", "[site]\nname = 'x'\n[x]"),
        "plant.toml: ",
    ),
    (
        "no stations",
        BASE.split("[[stations]]")[0],
        "plant.toml: stations: missing: at least one [[stations]]",
    ),
    (
        "unknown emitter",
        BASE.replace('emitter = "floor"', 'emitter = "flor"'),
        "plant.toml: stations[0].loops[0].emitter: unknown emitter 'flor' (expected one of floor, radiator) "
        "(did you mean 'floor'?)",
    ),
    (
        "design return above supply",
        BASE.replace("design_return = 40.0", "design_return = 55.0"),
        "plant.toml: stations[0].loops[0].design_return: 55 must be below design_supply (50)",
    ),
    (
        "unknown register type",
        BASE.replace('type = "float32"', 'type = "float32"\n  register = "coil"'),
        "plant.toml: stations[0].points[0].register: unknown register type 'coil' (expected one of holding, input)",
    ),
    (
        "unknown rule",
        BASE + "[rules.supply_lo]\nenabled = false\n",
        "plant.toml: rules.supply_lo: unknown rule (did you mean 'supply_low'?)",
    ),
    (
        "unknown severity",
        BASE + '[rules.supply_low]\nseverity = "urgent"\n',
        "plant.toml: rules.supply_low.severity: unknown severity 'urgent' (expected one of warning, major, critical)",
    ),
    (
        "rule-specific key on the wrong rule",
        BASE + "[rules.supply_low]\nmin_sensors = 2\n",
        "plant.toml: rules.supply_low.min_sensors: unknown key",
    ),
    (
        "bad season date",
        BASE + '[rules]\nseason_start = "10-32"\n',
        "plant.toml: rules.season_start: expected a date as MM-DD such as \"10-20\", got '10-32'",
    ),
    (
        "escalation order",
        BASE + '[rules]\nescalate_major_after = "48h"\nescalate_critical_after = "24h"\n',
        "plant.toml: rules.escalate_critical_after: must be later than escalate_major_after",
    ),
    (
        "bad template placeholder",
        BASE + '[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n[[mqtt.subscriptions]]\ntopic = "heat/{stattion}/{quantity}"\n',
        "plant.toml: mqtt.subscriptions[0].topic: unknown placeholder {stattion} (did you mean 'station'?)",
    ),
    (
        "bad mqtt url",
        BASE + '[mqtt]\nurl = "http://broker"\n',
        "plant.toml: mqtt.url: expected a URL starting with mqtt:// or mqtts://",
    ),
    (
        "unknown payload format",
        BASE + '[mqtt]\nurl = "mqtt://h"\n[[mqtt.subscriptions]]\ntopic = "h/{station}/{quantity}"\nformat = "xml"\n',
        "plant.toml: mqtt.subscriptions[0].format: unknown format 'xml'",
    ),
    (
        "bad listen address",
        BASE + '[http]\nlisten = "9640"\n',
        "plant.toml: http.listen: expected HOST:PORT such as 127.0.0.1:9640, got '9640'",
    ),
    (
        "fault on unknown station",
        BASE + '[[simulator.faults]]\nstation = "s9"\nloop = "sec1"\nkind = "undersupply"\n',
        "plant.toml: simulator.faults[0].station: unknown station 's9'",
    ),
    (
        "unknown fault kind",
        BASE + '[[simulator.faults]]\nstation = "s1"\nloop = "sec1"\nkind = "leak"\n',
        "plant.toml: simulator.faults[0].kind: unknown fault kind 'leak'",
    ),
    (
        "slave is device_id now",
        BASE.replace("port = 1502", "port = 1502\n  slave = 3"),
        "plant.toml: stations[0].modbus.slave: unknown key (did you mean 'device_id'?)",
    ),
    (
        "rtu without serial port",
        BASE.replace("port = 1502", 'port = 1502\n  transport = "rtu"'),
        'plant.toml: stations[0].modbus.serial_port: missing: transport = "rtu" needs a serial_port',
    ),
    (
        "indoor target out of range",
        BASE + "[site]\nindoor_target = 200.0\n",
        "plant.toml: site.indoor_target: 200 is out of range (expected 5.0..30.0)",
    ),
    (
        "credentials in the influx url",
        BASE.replace('url = "http://127.0.0.1:8086"', 'url = "http://admin:hunter2@127.0.0.1:8086"'),
        "plant.toml: influxdb.url: must not carry credentials",
    ),
    (
        "credentials in a webhook url",
        BASE + '[[alerting.webhook]]\nurl = "https://bot:s3cret@example.org/hook"\n',
        "plant.toml: alerting.webhook[0].url: must not carry credentials",
    ),
    (
        "station quantity on a loop",
        BASE + '  [[stations.points]]\n  loop = "sec1"\n  quantity = "outdoor_temp"\n  address = 0\n',
        "plant.toml: stations[0].points[1].loop: outdoor_temp belongs to the station, not to a loop",
    ),
    (
        "the same series twice",
        BASE + '  [[stations.points]]\n  loop = "sec1"\n  quantity = "supply_temp"\n  address = 0\n',
        "plant.toml: stations[0].points[1].quantity: supply_temp of this loop is already read by points[0]",
    ),
    (
        "mqtt alerts without a broker",
        BASE + "[alerting.mqtt]\nenabled = true\n",
        "plant.toml: alerting.mqtt: alerts over MQTT need an [mqtt] table",
    ),
    (
        "unknown timezone",
        BASE + '[site]\ntimezone = "Mars/Olympus"\n',
        "plant.toml: site.timezone: unknown time zone",
    ),
    (
        "register past the end",
        BASE.replace("address = 100", "address = 65535"),
        "plant.toml: stations[0].points[0].address: float32 at 65535 runs past register 65535",
    ),
    # found by fuzzing: each was a traceback, or a value accepted that no plant has
    (
        "integer too large for a float",
        BASE.replace("design_supply = 50.0", "design_supply = 1" + "0" * 400),
        "plant.toml: stations[0].loops[0].design_supply: 100000",
    ),
    (
        "integer too large for a 64-bit setting",
        BASE.replace('database = "stationmon"', 'database = "stationmon"\nbatch_size = 1' + "0" * 30),
        "plant.toml: influxdb.batch_size: 100000",
    ),
    (
        "non-ASCII digits in a listen port",
        BASE + '[http]\nlisten = "127.0.0.1:\u00b2"\n',
        "plant.toml: http.listen: expected HOST:PORT such as 127.0.0.1:9640, got '127.0.0.1:\u00b2'",
    ),
    (
        "a six-digit listen port",
        BASE + '[http]\nlisten = "127.0.0.1:009640"\n',
        "plant.toml: http.listen: expected HOST:PORT",
    ),
    (
        "invalid IPv6 URL",
        BASE.replace('url = "http://127.0.0.1:8086"', 'url = "http://[::1:8086"'),
        "plant.toml: influxdb.url: malformed URL: Invalid IPv6 URL",
    ),
    (
        "design temperature as a string with the emitter unset",
        BASE.replace('emitter = "floor"\n', "").replace("design_supply = 50.0", 'design_supply = "50"'),
        "plant.toml: stations[0].loops[0].design_supply: expected a number, got string '50'",
    ),
    (
        "design temperature as a list with the emitter unset",
        BASE.replace('emitter = "floor"\n', "").replace("design_return = 40.0", "design_return = [40]"),
        "plant.toml: stations[0].loops[0].design_return: expected a number, got array [40]",
    ),
    (
        "over-long timezone",
        BASE + '[site]\ntimezone = "Asia/' + "x" * 5000 + '"\n',
        "plant.toml: site.timezone: unknown time zone 'Asia/xxx",
    ),
    (
        "timezone as a path",
        BASE + '[site]\ntimezone = "../../etc/passwd"\n',
        "plant.toml: site.timezone: unknown time zone",
    ),
    ("deeply nested arrays", BASE + "x = " + "[" * 5000 + "]" * 5000 + "\n", "plant.toml: TOML syntax error: "),
    ("deeply nested tables", BASE + "y = " + "{a=" * 5000 + "1" + "}" * 5000 + "\n", "plant.toml: TOML syntax error: "),
    ("integer of 5000 digits", BASE + "z = " + "1" * 5000 + "\n", "plant.toml: TOML syntax error: "),
    (
        "infinite scale",
        BASE.replace('type = "float32"', 'type = "float32"\n  scale = inf'),
        "plant.toml: stations[0].points[0].scale: inf is not allowed (expected a finite number)",
    ),
    (
        "negative infinite offset",
        BASE.replace('type = "float32"', 'type = "float32"\n  offset = -inf'),
        "plant.toml: stations[0].points[0].offset: -inf is not allowed (expected a finite number)",
    ),
    (
        "400-digit duration",
        BASE.replace("port = 1502", 'port = 1502\n  interval = "' + "9" * 400 + 's"'),
        "plant.toml: stations[0].modbus.interval: '999",
    ),
    (
        "duration past a century",
        BASE + '[rules]\nfor = "40000d"\n',
        "plant.toml: rules.for: '40000d' is too long (at most 100 years)",
    ),
    (
        "huge value quoted short",
        BASE.replace("port = 1502", "port = [" + "1," * 100000 + "1]"),
        "plant.toml: stations[0].modbus.port: expected an integer, got array [1, 1, 1, 1, 1, 1, ...]",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_the_key(name: str, text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), f"{expected!r} not in {problems}"


def test_webhook_url_from_env_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0f1e2d3c"
    monkeypatch.setenv("WECOM_HOOK", url)
    cfg = parse_config_text(BASE + '[[alerting.webhook]]\nurl_env = "WECOM_HOOK"\n', "p.toml")
    assert cfg.alerting.webhook[0].url == url
    assert "0f1e2d3c" not in repr(cfg)
    monkeypatch.setenv("WECOM_HOOK", "qyapi.weixin.qq.com/send?key=0f1e2d3c")
    problems = problems_of(BASE + '[[alerting.webhook]]\nurl_env = "WECOM_HOOK"\n')
    assert problems == ["plant.toml: alerting.webhook[0].url_env: expected a URL starting with http:// or https://"]
    problems = problems_of(BASE + '[[alerting.webhook]]\nurl = "https://x"\nurl_env = "WECOM_HOOK"\n')
    assert problems == ["plant.toml: alerting.webhook[0].url: give either url or url_env / url_file, not both"]


def test_a_bad_url_never_echoes_its_password() -> None:
    problems = problems_of(BASE.replace('url = "http://127.0.0.1:8086"', 'url = "ftp://admin:hunter2@host"'))
    assert not any("hunter2" in p for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    text = "colour = 1\n" + BASE.replace('type = "float32"', 'type = "flot32"').replace("port = 1502", 'port = "x"')
    problems = problems_of(text)
    keys = [p.split(": ")[1] for p in problems]
    assert sorted(keys) == ["colour", "stations[0].modbus.port", "stations[0].points[0].type"]


def test_good_config_has_the_contract_defaults() -> None:
    cfg = parse_config_text(BASE, "plant.toml")
    assert cfg.site.timezone == "Asia/Shanghai"
    assert cfg.site.indoor_target == 18.0
    assert cfg.site.outdoor_design == -24.2
    station = cfg.stations[0]
    assert station.modbus is not None
    assert (station.modbus.device_id, station.modbus.byte_order, station.modbus.interval_s) == (
        1,
        "ABCD",
        10.0,
    )
    assert station.modbus.timeout_s == 2.0
    assert station.points[0].register == "holding"
    assert station.loops[0].exponent == 1.1
    assert cfg.http.host == "127.0.0.1" and cfg.http.port == 9640
    assert cfg.rules.rule("supply_low").for_s == 600.0
    assert cfg.rules.season_start == (10, 20) and cfg.rules.season_end == (4, 20)
    assert cfg.mqtt is None and cfg.alerting.alertmanager == ()
    assert any("outdoor_design" in n for n in cfg.notices)


def test_near_miss_quantity_and_assumed_loop_design_are_noticed() -> None:
    text = (
        BASE
        + '  [[stations.loops]]\n  id = "sec2"\n'
        + '  [[stations.points]]\n  loop = "sec2"\n  quantity = "supply_tmp"\n  address = 0\n'
    )
    cfg = parse_config_text(text, "plant.toml")
    assert (
        "stations[0].points[1].quantity: 'supply_tmp' is not a canonical quantity (did you mean 'supply_temp'?)"
        in cfg.notices
    )
    assert any(n.startswith("stations[0].loops[1]: emitter, design_supply, design_return not set") for n in cfg.notices)
    assert cfg.stations[0].points[1].quantity == "supply_tmp"  # still stored as it comes
    cfg = parse_config_text(BASE + '  [[stations.points]]\n  quantity = "return_temp"\n  address = 0\n', "p.toml")
    assert "stations[0].points[1].loop: not set: return_temp is stored, but no loop rule judges it" in cfg.notices


def test_per_rule_settings_fall_back_to_rules() -> None:
    cfg = parse_config_text(BASE + '[rules]\nfor = "2m"\nmargin = 2.0\n[rules.supply_low]\nfor = "30s"\n', "p.toml")
    assert cfg.rules.rule("supply_low").for_s == 30.0
    assert cfg.rules.rule("return_low").for_s == 120.0
    assert cfg.rules.rule("return_low").margin == 2.0
    assert cfg.rules.rule("station_offline").severity == "major"


def test_secrets_come_from_env_and_file_and_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_TEST_TOKEN", "s3cret-token")
    pw = tmp_path / "pw"
    pw.write_text("file-secret\n")
    text = (
        BASE.replace('database = "stationmon"', f'database = "stationmon"\nusername = "u"\npassword_file = "{pw}"')
        + '[http]\ntoken_env = "SM_TEST_TOKEN"\n'
    )
    cfg = parse_config_text(text, "p.toml")
    assert cfg.http.token is not None and cfg.http.token.get() == "s3cret-token"
    assert cfg.influxdb.password is not None and cfg.influxdb.password.get() == "file-secret"
    assert "s3cret" not in repr(cfg) and "file-secret" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("24h", 86400), ("1h30m", 5400), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "s", "10 s", "-5s", "1.5.2s", "10sec"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_example_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "t")
    monkeypatch.setenv("STATIONMON_TOKEN", "t")
    cfg = load_config(Path(__file__).parents[2] / "configs" / "example.toml")
    assert len(cfg.stations) == 3
    assert {lp.emitter for s in cfg.stations for lp in s.loops} == {"floor", "radiator"}


@pytest.mark.parametrize("name", ["example.toml", "compose.toml"])
def test_shipped_configs_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "t")
    monkeypatch.setenv("STATIONMON_TOKEN", "t")
    cfg = load_config(Path(__file__).parents[2] / "configs" / name)
    assert [s.id for s in cfg.stations] == ["daoli-youyi-334", "daoli-jingwei-12", "daoli-anjing-7"]


def test_check_config_exit_codes_and_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plant.toml"
    bad.write_text(BASE.replace('type = "float32"', 'type = "flot32"'))
    assert main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plant.toml: stations[0].points[0].type: unknown type 'flot32'")
    assert "Traceback" not in err
    good = tmp_path / "good.toml"
    good.write_text(BASE)
    assert main(["check-config", "-c", str(good)]) == 0
    out = capsys.readouterr().out
    assert "1 stations, 1 loops, 1 points" in out
    assert "read plan" in out
    missing = tmp_path / "nope.toml"
    assert main(["check-config", "-c", str(missing)]) == 2
    assert capsys.readouterr().err.startswith("nope.toml: cannot read config")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("area_m2 = 0", "plant.toml: stations[0].area_m2: 0 is out of range (expected a finite number above 0"),
        ("area_m2 = -5.5", "plant.toml: stations[0].area_m2: -5.5 is out of range"),
        ('area_m2 = "big"', "plant.toml: stations[0].area_m2: expected a number"),
        ("households = -1", "plant.toml: stations[0].households: -1 is out of range (expected >= 0)"),
        ("households = 2.5", "plant.toml: stations[0].households: expected an integer"),
        ("company = 7", "plant.toml: stations[0].company: expected a string"),
    ],
)
def test_station_metadata_is_validated_with_key_paths(keys: str, expected: str) -> None:
    found = problems_of(BASE.replace('district = "道里区"', f'district = "道里区"\n{keys}'))
    assert any(p.startswith(expected) for p in found), found


def test_station_metadata_reaches_the_station() -> None:
    extra = 'company = "冰城热力有限公司"\nheat_source = "哈尔滨第一热电厂"\narea_m2 = 160000\nhouseholds = 3000'
    station = parse_config_text(BASE.replace('district = "道里区"', f'district = "道里区"\n{extra}')).stations[0]
    assert (station.company, station.heat_source, station.area_m2, station.households) == (
        "冰城热力有限公司",
        "哈尔滨第一热电厂",
        160000.0,
        3000,
    )
    bare = parse_config_text(BASE).stations[0]
    assert (bare.company, bare.heat_source, bare.area_m2, bare.households) == ("", "", None, None)


def test_mqtt_series_limits() -> None:
    mqtt = '[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n'
    cfg = parse_config_text(BASE + mqtt, "plant.toml")
    assert cfg.mqtt is not None
    assert (cfg.mqtt.max_sensors_per_loop, cfg.mqtt.max_quantities_per_loop) == (500, 64)
    cfg = parse_config_text(BASE + mqtt + "max_sensors_per_loop = 20\nmax_quantities_per_loop = 8\n", "plant.toml")
    assert cfg.mqtt is not None
    assert (cfg.mqtt.max_sensors_per_loop, cfg.mqtt.max_quantities_per_loop) == (20, 8)
    assert problems_of(BASE + mqtt + "max_sensors_per_loop = 0\n") == [
        "plant.toml: mqtt.max_sensors_per_loop: 0 is out of range (expected 1..1000000)"
    ]


# -- issue 12: legal tiers, inspection hours, smoothing, setbacks, circulation ---------------------------


def test_judgement_defaults() -> None:
    cfg = parse_config_text(BASE, "plant.toml")
    assert cfg.site.indoor_refund_below == 16.0 and cfg.site.inspection_exclude == () and cfg.site.fee_per_m2 is None
    r = cfg.rules
    assert (r.outdoor_smoothing_s, r.water_smoothing_s) == (43200.0, 1800.0)
    assert (r.min_flow, r.min_flow_share, r.exempt_below_design, r.setbacks) == (1.0, 0.1, False, ())
    assert r.rule("indoor_low").margin == 0.0 and r.rule("indoor_low").severity == "major"
    assert r.rule("no_circulation").severity == "critical"
    assert r.rule("primary_shortage").approach == 5.0
    assert cfg.stations[0].setbacks is None and cfg.stations[0].loops[0].design_flow is None


def test_judgement_keys() -> None:
    text = BASE.replace(
        '  [[stations.loops]]\n  id = "sec1"\n',
        '  [[stations.setback]]\n  from = "22:00"\n  to = "06:00"\n  kelvin = 2\n'
        '  [[stations.loops]]\n  id = "sec1"\n  design_flow = 650.0\n',
    ).replace('  type = "float32"\n', '  type = "int16"\n  scale = 0.1\n  flatline_tolerance = 0.2\n')
    text += (
        "[site]\nindoor_target = 20.0\nindoor_refund_below = 15.0\n"
        'inspection_exclude = ["10:00-14:00", "23:30-00:30"]\n'
        "fee_per_m2 = 38.0\n"
        '[rules]\noutdoor_smoothing = "24h"\nwater_smoothing = "15m"\nmin_flow = 2.5\nmin_flow_share = 0.2\n'
        'exempt_below_design = true\n[[rules.setback]]\nfrom = "10:00"\nto = "15:00"\nkelvin = 3.0\n'
        '[rules.primary_shortage]\napproach = 8.0\n[rules.sensor_fault]\nstale_after = "5m"\n'
    )
    cfg = parse_config_text(text, "plant.toml")
    site, rules, station = cfg.site, cfg.rules, cfg.stations[0]
    assert (site.indoor_target, site.indoor_refund_below, site.fee_per_m2) == (20.0, 15.0, 38.0)
    assert [str(w) for w in site.inspection_exclude] == ["10:00-14:00", "23:30-00:30"]
    assert site.inspection_exclude[1].contains(0) and not site.inspection_exclude[1].contains(60)
    assert (rules.outdoor_smoothing_s, rules.water_smoothing_s, rules.min_flow, rules.min_flow_share) == (
        86400.0,
        900.0,
        2.5,
        0.2,
    )
    assert rules.exempt_below_design and [(str(s.window), s.kelvin) for s in rules.setbacks] == [("10:00-15:00", 3.0)]
    assert rules.rule("primary_shortage").approach == 8.0 and rules.rule("sensor_fault").stale_after_s == 300.0
    assert station.setbacks is not None and [(str(s.window), s.kelvin) for s in station.setbacks] == [
        ("22:00-06:00", 2.0)
    ]
    assert station.loops[0].design_flow == 650.0 and station.points[0].flatline_tolerance == 0.2


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '[site]\ninspection_exclude = ["10:00"]\n',
            'site.inspection_exclude[0]: expected local hours as "HH:MM-HH:MM"',
        ),
        (
            '[site]\ninspection_exclude = ["10:00-25:00"]\n',
            "site.inspection_exclude[0]: expected a local time as HH:MM",
        ),
        ('[site]\ninspection_exclude = "10:00-14:00"\n', 'site.inspection_exclude: expected an array of "HH:MM-HH:MM"'),
        (
            "[site]\nindoor_target = 18.0\nindoor_refund_below = 19.0\n",
            "site.indoor_refund_below: 19 must not be above",
        ),
        ('[[rules.setback]]\nfrom = "10:00"\nkelvin = 3.0\n', "rules.setback[0].to: missing"),
        (
            '[[rules.setback]]\nfrom = "10:00"\nto = "10:00"\nkelvin = 3.0\n',
            "rules.setback[0].to: '10:00-10:00' is empty",
        ),
        (
            '[[rules.setback]]\nfrom = "10:00"\nto = "12:00"\nkelvin = 40.0\n',
            "rules.setback[0].kelvin: 40 is out of range",
        ),
        ("[rules]\nmin_flow_share = 1.5\n", "rules.min_flow_share: 1.5 is out of range"),
        ('[rules.no_circulation]\nseverity = "fatal"\n', "rules.no_circulation.severity: unknown severity"),
    ],
)
def test_bad_judgement_keys(extra: str, expected: str) -> None:
    assert any(expected in p for p in problems_of(BASE + extra)), problems_of(BASE + extra)


UNSET_SECRETS = BASE.replace(
    'database = "stationmon"',
    'database = "stationmon"\nusername = "u"\npassword_env = "NOPE_UNSET_2"',
) + ('[[alerting.webhook]]\nurl_env = "NOPE_UNSET_HOOK"\ntimeout = "5s"\nhmac_secret_file = "/nonexistent/hmac"\n')


def test_unset_secrets_are_warnings_when_not_required() -> None:
    cfg = parse_config_text(UNSET_SECRETS, "plant.toml", require_secrets=False)
    assert cfg.warnings == (
        "plant.toml: influxdb.password_env: environment variable NOPE_UNSET_2 is not set",
        "plant.toml: alerting.webhook[0].url_env: environment variable NOPE_UNSET_HOOK is not set",
        "plant.toml: alerting.webhook[0].hmac_secret_file: cannot read /nonexistent/hmac: No such file or directory",
    )
    assert cfg.influxdb.password is None
    assert cfg.alerting.webhook == ()  # no URL here: no receiver (run refuses this file)
    with pytest.raises(ConfigError) as info:
        parse_config_text(UNSET_SECRETS, "plant.toml")  # what run does
    assert info.value.problems == list(cfg.warnings)


def test_lenient_secrets_still_refuse_real_errors() -> None:
    text = UNSET_SECRETS.replace('type = "float32"', 'type = "flot32"').replace('timeout = "5s"', 'timeout = "5"')
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "plant.toml", require_secrets=False)
    problems = info.value.problems
    assert any(p.startswith("plant.toml: stations[0].points[0].type: unknown type 'flot32'") for p in problems)
    assert any(p.startswith("plant.toml: alerting.webhook[0].timeout:") for p in problems)
    assert not any("NOPE_UNSET" in p for p in problems)  # the secrets stay warnings beside real errors


def test_check_config_warns_about_unset_secrets_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(UNSET_SECRETS)
    assert main(["check-config", "-c", str(path)]) == 0
    captured = capsys.readouterr()
    assert "plant.toml: valid" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3
    assert warnings[0].startswith("warning: plant.toml: influxdb.password_env: environment variable NOPE_UNSET_2")
    assert main(["check-config", "-c", str(path), "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "plant.toml: influxdb.password_env: environment variable NOPE_UNSET_2 is not set",
        "plant.toml: alerting.webhook[0].url_env: environment variable NOPE_UNSET_HOOK is not set",
        "plant.toml: alerting.webhook[0].hmac_secret_file: cannot read /nonexistent/hmac: No such file or directory",
    ]


def test_run_refuses_unset_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(UNSET_SECRETS)
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plant.toml: influxdb.password_env: environment variable NOPE_UNSET_2 is not set")
    assert "Traceback" not in err


def test_http_listen_from_the_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATIONMON_HTTP_LISTEN", "0.0.0.0:9641")
    cfg = parse_config_text(BASE + '[http]\nlisten = "127.0.0.1:9640"\n', "plant.toml")
    assert (cfg.http.host, cfg.http.port) == ("0.0.0.0", 9641)
    assert "http.listen: STATIONMON_HTTP_LISTEN overrides it: 0.0.0.0:9641" in cfg.notices
    assert (parse_config_text(BASE).http.host, parse_config_text(BASE).http.port) == ("0.0.0.0", 9641)  # no [http]
    monkeypatch.setenv("STATIONMON_HTTP_LISTEN", "everywhere")
    with pytest.raises(ConfigError) as info:
        parse_config_text(BASE, "plant.toml")
    assert info.value.problems == [
        "plant.toml: http.listen (STATIONMON_HTTP_LISTEN): expected HOST:PORT such as 127.0.0.1:9640, got 'everywhere'"
    ]
