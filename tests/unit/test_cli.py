"""The command line: --version, --help on every command, log formats, the failure/recovery log pattern."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from stationmon import __version__
from stationmon.cli import build_parser, main
from stationmon.logutil import FailureLog, RateLimitedLog, setup_logging

COMMANDS = ["run", "check-config", "demo", "simulate", "curve", "report"]


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "stationmon", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"stationmon {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: stationmon {command}" in capsys.readouterr().out


def test_every_contract_command_is_there() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)  # type: ignore[arg-type]


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: stationmon" in capsys.readouterr().out


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["curve", "--design", "50/40"])  # --outdoor missing
    assert info.value.code == 2


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", "json")
        logging.getLogger("stationmon.test").warning("PLC %s unreachable", "daoli-youyi-334")
        doc = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert doc["level"] == "warning" and doc["logger"] == "stationmon.test"
        assert doc["msg"] == "PLC daoli-youyi-334 unreachable" and doc["ts"].endswith("Z")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_failure_logs_error_once_then_debug_then_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="stationmon.t")
    flog = FailureLog(logging.getLogger("stationmon.t"), "station s1 (10.0.0.1:502)")
    flog.success()  # no recovery message when it was never failing
    for _ in range(3):
        flog.failure("connection refused")
    flog.success()
    flog.success()
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("ERROR", "station s1 (10.0.0.1:502): connection refused"),
        ("DEBUG", "station s1 (10.0.0.1:502): still failing: connection refused"),
        ("DEBUG", "station s1 (10.0.0.1:502): still failing: connection refused"),
        ("INFO", "station s1 (10.0.0.1:502): recovered"),
    ]


def test_rate_limited_log_once_a_minute_per_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="stationmon.r")
    rl = RateLimitedLog(logging.getLogger("stationmon.r"), interval_s=60)
    assert rl.warning("t/a", "bad payload on %s", "t/a", now=0.0)
    assert not rl.warning("t/a", "bad payload on %s", "t/a", now=59.0)
    assert rl.warning("t/b", "bad payload on %s", "t/b", now=59.0)
    assert rl.warning("t/a", "bad payload on %s", "t/a", now=61.0)
    assert len(caplog.records) == 3


RUN_CONFIG = """
[influxdb]
url = "http://127.0.0.1:9"
api = "v1"
database = "d"
spool_dir = "{spool}"
[http]
listen = "127.0.0.1:{port}"
[[stations]]
id = "s1"
"""


def test_run_refuses_an_unwritable_spool_dir_with_the_key(tmp_path, capsys):  # type: ignore[no-untyped-def]
    import socket

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "plant.toml"
    cfg.write_text(RUN_CONFIG.format(spool=blocker / "spool", port=port))
    assert main(["run", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"plant.toml: influxdb.spool_dir: cannot create {blocker / 'spool'}: Not a directory")
    assert "Traceback" not in err


def test_run_refuses_a_busy_http_address_with_the_key(tmp_path, capsys):  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "plant.toml"
        cfg.write_text(RUN_CONFIG.format(spool=tmp_path / "spool", port=port))
        assert main(["run", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"plant.toml: http.listen: cannot listen on 127.0.0.1:{port}: Address already in use")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--stations", "0"], "stationmon demo: --stations: expected 1..200, got 0"),
        (["demo", "--outdoor", "-60"], "stationmon demo: --outdoor: expected -50..45 °C, got -60"),
        (["demo", "--listen", "127.0.0.1:99999"], "stationmon demo: --listen: expected HOST:PORT with a port 0..65535"),
        (
            ["demo", "--listen", "127.0.0.1:\u00b2"],
            "stationmon demo: --listen: expected HOST:PORT with a port 0..65535",
        ),
        (["report", "-c", "x.toml", "--from", "-24 h"], None),
    ],
)
def test_bad_demo_and_report_arguments_exit_2(argv, message, tmp_path, capsys):  # type: ignore[no-untyped-def]
    if argv[0] == "report":
        cfg = tmp_path / "x.toml"
        cfg.write_text(RUN_CONFIG.format(spool=tmp_path / "s", port=9))
        argv = ["report", "-c", str(cfg), *argv[3:]]
        message = "stationmon report: bad time '-24 h'"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


# -- stationmon curve: negative values, ranges, design indoor, notes ------------------------------------

CURVE = ["curve", "--design", "50/40", "--emitter", "floor"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--outdoor", "-10", "--measured", "-999/-999"], "--measured: -999 °C (a PLC's broken-probe value) is not"),
        (["--outdoor", "-10", "--measured", "850/850"], "--measured: 850 °C (a PLC's broken-probe value) is not"),
        (["--outdoor", "-10", "--measured", "131/40"], "--measured: 131 °C is not a plausible water temperature"),
        (["--outdoor", "-10", "--measured", "41/-1"], "--measured: -1 °C is not a plausible water temperature"),
        (["--outdoor", "-60"], "--outdoor: -60 °C is out of range (expected -50..45 °C)"),
        (["--outdoor", "-10", "--indoor-target", "-5"], "--indoor-target: -5 °C is out of range"),
        (["--outdoor", "-10", "--design-indoor", "40"], "--design-indoor: 40 °C is out of range"),
        (["--outdoor", "-10", "--design-indoor", "12", "--outdoor-design", "14"], "--outdoor-design: 14 must be below"),
    ],
)
def test_curve_refuses_implausible_values_with_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*CURVE, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stationmon curve: {message}"), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--outdoor", "-10", "--measured", "41/34"],
        ["--outdoor=-10", "--measured=41/34"],
        ["--outdoor", "-1e1", "--measured", "41/34"],
        ["--outdoor", "-10.0", "--outdoor-design", "-24.2", "--indoor-target", "18", "--measured", "41/34"],
    ],
)
def test_curve_takes_negative_values_in_every_form(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*CURVE, *argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["estimated_indoor_temp"] == pytest.approx(18.6, abs=0.05)  # DOMAIN.md: 41/34 on 50/40 at -10


def test_curve_negative_pair_reaches_the_range_check_not_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    # without the joining, argparse would read "-999/-999" as an unknown option and exit through SystemExit
    assert main([*CURVE, "--outdoor", "-10", "--design", "-5/-10"]) == 2
    assert "--design: -5 °C is not a plausible water temperature" in capsys.readouterr().err


def test_curve_design_indoor_changes_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*CURVE, "--outdoor", "-10", "--json"]) == 0
    at_18 = json.loads(capsys.readouterr().out)
    assert main([*CURVE, "--outdoor", "-10", "--design-indoor", "20", "--indoor-target", "20", "--json"]) == 0
    at_20 = json.loads(capsys.readouterr().out)
    # same relative load and the same indoor: a design for 20 °C needs less excess temperature at -10 °C
    assert at_20["required_supply_temp"] != pytest.approx(at_18["required_supply_temp"], abs=0.1)
    assert main([*CURVE, "--outdoor", "-24.2", "--design-indoor", "20", "--indoor-target", "20", "--json"]) == 0
    at_design = json.loads(capsys.readouterr().out)
    assert at_design["required_supply_temp"] == pytest.approx(50.0, abs=0.01)  # design point is the design
    assert at_design["required_return_temp"] == pytest.approx(40.0, abs=0.01)


@pytest.mark.parametrize(
    ("outdoor", "note"),
    [
        ("-35", "below the design outdoor temperature -24.2 °C"),
        ("22", "at or above the indoor target 20 °C: no heating demand"),
        ("20", "at or above the indoor target 20 °C: no heating demand"),
        ("-10", None),
        ("-24.2", None),
    ],
)
def test_curve_notes_outside_the_meaningful_range(
    outdoor: str, note: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*CURVE, "--outdoor", outdoor, "--indoor-target", "20", "--measured", "41/34"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    if note is None:
        assert "note:" not in out and "notes" not in doc
    else:
        assert f"note: outdoor {outdoor} °C is {note}" in out
        assert len(doc["notes"]) == 1 and note in doc["notes"][0]


def test_rate_limited_log_caps_each_reason_and_sums_up_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    """50,000 distinct topics of one reason: `per_group` lines a minute, then one line saying how many more."""
    caplog.set_level(logging.WARNING, logger="stationmon.r")
    rl = RateLimitedLog(logging.getLogger("stationmon.r"), interval_s=60, per_group=5)
    logged = sum(rl.warning(f"t/{i}", "unknown %s", i, group="unknown_station", now=i / 1000) for i in range(50_000))
    assert logged == 5
    assert rl.warning("t/x", "bad %s", "x", group="not_a_number", now=1.0)  # another reason has its own lines
    assert rl.warning("t/late", "unknown %s", "late", group="unknown_station", now=61.0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 8
    assert messages[-2] == "49995 more like this (unknown_station) not logged in the last 61s"


def test_one_line_exceptions_and_printable(caplog: pytest.LogCaptureFixture) -> None:
    from stationmon.logutil import OneLineExceptions, printable

    assert printable("a\nb\r\\c\x00\u2028") == "a\\nb\\r\\\\c\\x00\\u2028"
    assert printable("x" * 1000, 10) == "x" * 10 + "..."
    logger = logging.getLogger("stationmon.test.server")
    logger.addFilter(OneLineExceptions())
    caplog.set_level(logging.DEBUG, logger="stationmon.test.server")
    try:
        raise ValueError("Bad status line:\n\n  b'GET /\\n'\nERROR stationmon.modbus: FORGED")
    except ValueError:
        logger.exception("Error handling request from %s", "127.0.0.1")
    (record,) = caplog.records
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "\n" not in record.getMessage()
    assert record.getMessage().startswith("Error handling request from 127.0.0.1: ValueError: Bad status line:")


def test_check_config_has_strict(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check-config", "--help"])
    assert "--strict" in capsys.readouterr().out
    assert build_parser().parse_args(["check-config", "-c", "x.toml", "--strict"]).strict is True
    assert build_parser().parse_args(["check-config", "-c", "x.toml"]).strict is False


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9640", "http://127.0.0.1:9640/"),
        ("0.0.0.0:9640", "http://127.0.0.1:9640/ (listening on every address, 0.0.0.0:9640)"),
        ("[::]:9641", "http://127.0.0.1:9641/ (listening on every address, [::]:9641)"),
    ],
)
def test_demo_banner_gives_a_page_url_to_open(listen: str, url: str) -> None:
    from stationmon.cli.demo import _page_url

    assert _page_url(listen) == url
