"""`[http] grafana_url`: the base URL the status page links each station's Grafana dashboard to."""

from __future__ import annotations

import pytest

from stationmon.config import parse_config_text
from stationmon.errors import ConfigError

BASE = """
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "stationmon"
[[stations]]
id = "s1"
"""


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("http://grafana:3000", "http://grafana:3000"),
        ("https://grafana.example.org/grafana/", "https://grafana.example.org/grafana"),
        ("", ""),
    ],
)
def test_grafana_url_is_kept_without_its_trailing_slash(value: str, want: str) -> None:
    config = parse_config_text(BASE + f'[http]\ngrafana_url = "{value}"\n', "plant.toml")
    assert config.http.grafana_url == want


def test_no_grafana_url_means_no_links() -> None:
    assert parse_config_text(BASE, "plant.toml").http.grafana_url == ""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("grafana:3000", "expected a URL starting with http:// or https://"),
        ("ftp://grafana", "expected a URL starting with http:// or https://"),
        ("http://admin:secret@grafana:3000", "must not carry credentials"),
        ("http://grafana:3000/?orgId=1", "without ?query or #fragment"),
        ("http://grafana:99999", "bad port"),
    ],
)
def test_a_bad_grafana_url_names_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text(BASE + f'[http]\ngrafana_url = "{value}"\n', "plant.toml")
    text = str(err.value)
    assert "plant.toml: http.grafana_url: " in text and message in text, text
