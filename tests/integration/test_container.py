"""The container as shipped: docker-compose.yml is valid (Debian's `docker-compose config`), the image
listens on all interfaces through STATIONMON_HTTP_LISTEN, and the image's HEALTHCHECK and the compose
healthcheck are one command that really tells a running stationmon from a missing one.

No Docker engine is needed: nothing is built or started in a container.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import free_port, wait_until, write_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_ENV = {"INFLUX_TOKEN": "test-token", "STATIONMON_TOKEN": "test-token"}


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is not installed: run `apt-get install -y docker-compose` (or .ci/run)")
    return found


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **COMPOSE_ENV}
    return subprocess.run(
        [_docker_compose(), "-f", str(path), "config"], capture_output=True, text=True, env=env, timeout=60
    )


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def _image_healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (--interval=30s ...) and its exec-form command."""
    [args] = [rest for word, rest in _dockerfile_instructions() if word == "HEALTHCHECK"]
    options, _, command = args.partition(" CMD ")
    flags = dict(opt.removeprefix("--").split("=", 1) for opt in options.split())
    return flags, json.loads(command)


def test_compose_file_is_valid() -> None:
    result = _compose_config(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"stationmon", "influxdb", "mosquitto", "alertmanager", "grafana"} <= set(services)


def test_compose_validation_fails_on_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    portz: [1]\n", 1))
    result = _compose_config(broken)
    assert result.returncode != 0
    assert "portz" in result.stderr


def test_image_and_compose_healthchecks_are_the_same_check() -> None:
    flags, command = _image_healthcheck()
    compose: dict[str, Any] = yaml.safe_load(_compose_config(ROOT / "docker-compose.yml").stdout)
    check = compose["services"]["stationmon"]["healthcheck"]
    assert check["test"] == ["CMD", *command]
    for key in ("interval", "timeout", "start_period", "retries"):
        assert str(check[key]) == flags[key.replace("_", "-")], key
    assert any("/healthz" in part for part in command)


def test_image_listens_on_all_interfaces() -> None:
    instructions = _dockerfile_instructions()
    env = dict(rest.split("=", 1) for word, rest in instructions if word == "ENV")
    assert env["STATIONMON_HTTP_LISTEN"] == "0.0.0.0:9640"
    assert ("EXPOSE", "9640") in instructions
    # the config the image runs by default listens on 127.0.0.1; the variable moves it
    copied = [rest.split()[0] for word, rest in instructions if word == "COPY" and "/etc/stationmon" in rest]
    result = subprocess.run(
        [sys.executable, "-m", "stationmon", "check-config", "-c", str(ROOT / copied[0])],
        capture_output=True,
        text=True,
        env={**os.environ, "STATIONMON_HTTP_LISTEN": env["STATIONMON_HTTP_LISTEN"]},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "\nhttp 0.0.0.0:9640\n" in result.stdout
    assert "http.listen: STATIONMON_HTTP_LISTEN overrides it: 0.0.0.0:9640" in result.stdout


async def test_healthcheck_command_tells_a_running_stationmon_from_none(  # type: ignore[no-untyped-def]
    tmp_path: Path, influxdb, influx_db
) -> None:
    _flags, command = _image_healthcheck()
    configured, from_env = free_port(), free_port()
    config = write_config(
        tmp_path,
        f"""
[influxdb]
url = "{influxdb.url}"
api = "v1"
database = "{influx_db}"
spool_dir = "{tmp_path}/spool"
[http]
listen = "127.0.0.1:{configured}"
[[stations]]
id = "s1"
""",
    )
    env = {**os.environ, "STATIONMON_HTTP_LISTEN": f"127.0.0.1:{from_env}"}

    def healthcheck() -> int:
        return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode

    assert healthcheck() != 0  # nothing listens yet: the check fails
    proc = subprocess.Popen(
        [sys.executable, "-m", "stationmon", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        await wait_until(lambda: healthcheck() == 0, timeout=30, message="the healthcheck passing")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
