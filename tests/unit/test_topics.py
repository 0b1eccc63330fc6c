"""Topic templates -> broker filters and routes; exact point topics first; cache bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stationmon.config import Config, parse_config_text
from stationmon.domain.model import Reading
from stationmon.domain.payloads import PayloadSpec, Route
from stationmon.domain.plant import Point, Station
from stationmon.domain.topics import (
    SeriesLimits,
    Subscription,
    TopicRouter,
    compile_template,
    filter_matches,
    shared_filter,
)

CONFIG = """
[mqtt]
url = "mqtt://127.0.0.1:1883"

[[mqtt.subscriptions]]
topic = "heat/{station}/{loop}/indoor/{sensor}"
quantity = "indoor_temp"

[[mqtt.subscriptions]]
topic = "heat/{station}/{loop}/{quantity}"

[[mqtt.subscriptions]]
topic = "plc/{station}/{loop}"
format = "json_fields"
time = "ts"

[[mqtt.subscriptions]]
topic = "site/{station}/+/outdoor/#"
format = "json"
quantity = "outdoor_temp"
value = "data.t"

[[mqtt.subscriptions]]
topic = "fixed/+/{quantity}"
station = "s2"

[[stations]]
id = "s1"
district = "d"
  [[stations.loops]]
  id = "sec1"
  [[stations.loops]]
  id = "sec2"
  [[stations.points]]
  loop = "sec1"
  quantity = "flow"
  topic = "vendor/s1/flow"
  [[stations.points]]
  loop = "sec1"
  quantity = "supply_temp"
  topic = "vendor/s1/both"
  format = "json"
  value = "sup"
  [[stations.points]]
  loop = "sec1"
  quantity = "return_temp"
  topic = "vendor/s1/both"
  format = "json"
  value = "ret"
  [[stations.points]]
  loop = "sec2"
  quantity = "supply_temp"
  topic = "heat/s1/sec2/supply_temp"

[[stations]]
id = "s2"
  [[stations.loops]]
  id = "main"
"""

PLAIN = PayloadSpec("plain", "value", "")


def _config() -> Config:
    return parse_config_text(CONFIG, require_influxdb=False)


def _router() -> TopicRouter:
    cfg = _config()
    assert cfg.mqtt is not None
    return TopicRouter(cfg.stations, cfg.mqtt.subscriptions, point_qos=cfg.mqtt.qos)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        # household sensor: the more specific template comes first in the config and wins
        ("heat/s1/sec1/indoor/flat-12", (Route("s1", "sec1", "indoor_temp", "flat-12", PLAIN),)),
        ("heat/s1/sec1/return_temp", (Route("s1", "sec1", "return_temp", None, PLAIN),)),
        ("heat/s1/sec2/heat_power", (Route("s1", "sec2", "heat_power", None, PLAIN),)),
        # unknown quantities of known stations are routed, to be stored as they come
        ("heat/s2/main/valve_position", (Route("s2", "main", "valve_position", None, PLAIN),)),
        (
            "plc/s1/sec1",
            (Route("s1", "sec1", None, None, PayloadSpec("json_fields", "value", "ts")),),
        ),
        # '+' captures nothing; '#' matches any depth, including zero more levels
        (
            "site/s2/x/outdoor",
            (Route("s2", None, "outdoor_temp", None, PayloadSpec("json", "data.t", "")),),
        ),
        (
            "site/s2/x/outdoor/a/b/c",
            (Route("s2", None, "outdoor_temp", None, PayloadSpec("json", "data.t", "")),),
        ),
        # a fixed station in the config
        ("fixed/anything/outdoor_temp", (Route("s2", None, "outdoor_temp", None, PLAIN),)),
        # exact point topics first, even where a template also matches
        ("vendor/s1/flow", (Route("s1", "sec1", "flow", None, PLAIN),)),
        ("heat/s1/sec2/supply_temp", (Route("s1", "sec2", "supply_temp", None, PLAIN),)),
        (
            "vendor/s1/both",
            (
                Route("s1", "sec1", "supply_temp", None, PayloadSpec("json", "sup", "")),
                Route("s1", "sec1", "return_temp", None, PayloadSpec("json", "ret", "")),
            ),
        ),
        # rejections
        ("heat/nope/sec1/supply_temp", "unknown_station"),
        ("heat//sec1/supply_temp", "unknown_station"),
        ("heat/s1/sec9/supply_temp", "unknown_loop"),
        ("heat/s1/sec1/SupplyTemp", "bad_quantity"),
        ("heat/s1/sec1/", "bad_quantity"),
        ("heat/s1/sec1/indoor/", "bad_sensor"),
        ("heat/s1/sec1", "no_match"),
        ("heat/s1/sec1/a/b/c", "no_match"),
        ("site/s2/x", "no_match"),
        ("other", "no_match"),
        ("vendor/s1/flow/extra", "no_match"),
    ],
)
def test_route(topic: str, expected: object) -> None:
    router = _router()
    assert router.route(topic) == expected
    assert router.route(topic) == expected  # and the cached answer is the same


def test_filters_cover_templates_and_uncovered_points() -> None:
    router = _router()
    assert router.filters() == [
        ("heat/+/+/indoor/+", 1),
        ("heat/+/+/+", 1),
        ("plc/+/+", 1),
        ("site/+/+/outdoor/#", 1),
        ("fixed/+/+", 1),
        # heat/s1/sec2/supply_temp is covered by heat/+/+/+: subscribing twice would deliver it twice
        ("vendor/s1/flow", 1),
        ("vendor/s1/both", 1),
    ]


def test_filters_in_a_share_group() -> None:
    cfg = _config()
    assert cfg.mqtt is not None
    router = TopicRouter(cfg.stations, cfg.mqtt.subscriptions, share_group="stationmon")
    assert router.filters()[0] == ("$share/stationmon/heat/+/+/indoor/+", 1)
    assert all(f.startswith("$share/stationmon/") for f, _ in router.filters())


def test_shared_filter() -> None:
    assert shared_filter("heat/+/+/+", "") == "heat/+/+/+"
    assert shared_filter("heat/+/+/+", "stationmon") == "$share/stationmon/heat/+/+/+"


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),
        ("a/+", "a", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("+/+", "a/b", True),
        ("a/+/c", "a/b/d", False),
    ],
)
def test_filter_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert filter_matches(topic_filter, topic) is matches


def test_cache_is_bounded() -> None:
    cfg = _config()
    assert cfg.mqtt is not None
    router = TopicRouter(cfg.stations, cfg.mqtt.subscriptions, max_cached_topics=10)
    for i in range(100):
        assert router.route(f"heat/x{i}/sec1/flow") == "unknown_station"
        assert len(router._cache) <= 10
    assert router.route("heat/s1/sec1/flow") == (Route("s1", "sec1", "flow", None, PLAIN),)


_level = st.text(alphabet="abcxyz_-019{}+#$ ", max_size=6)


@given(st.lists(_level, min_size=1, max_size=8))
def test_template_agrees_with_mqtt_matching(levels: list[str]) -> None:
    """Whatever the template's matcher accepts, the broker's filter would deliver, and vice versa."""
    topic = "/".join(level.replace("+", "").replace("#", "") for level in levels)
    for template in (
        "heat/{station}/{loop}/{quantity}",
        "a/+/{station}/#",
        "{station}/x",
        "#",
    ):
        compiled = compile_template(Subscription(topic=template, station="s"))
        matched = compiled.match(topic.split("/")) is not None
        assert matched == filter_matches(compiled.filter, topic) or topic.startswith("$")


def _indoor(sensor: str, quantity: str = "indoor_temp", loop: str | None = "sec1") -> Reading:
    return Reading("s1", quantity, 20.0, 0.0, loop, sensor, "mqtt")


def test_series_limits_cut_new_sensors_and_quantities_per_loop() -> None:
    station = Station(
        id="s1",
        points=(Point(quantity="made_up_fixed", loop="sec1", topic="x/y"),),
    )
    limits = SeriesLimits(max_sensors=3, max_quantities=2, stations=[station])
    assert [limits.admit(_indoor(f"f{i}")) for i in range(5)] == [True, True, True, False, False]
    assert limits.admit(_indoor("f0"))  # seen before: still admitted
    assert limits.admit(_indoor("f0", loop="sec2"))  # another loop has its own budget
    made_up = [limits.admit(Reading("s1", f"q{i}", 1.0, 0.0, "sec1")) for i in range(4)]
    assert made_up == [True, True, False, False]
    assert limits.admit(Reading("s1", "supply_temp", 1.0, 0.0, "sec1"))  # canonical: always
    assert limits.admit(Reading("s1", "made_up_fixed", 1.0, 0.0, "sec1"))  # a configured point: always
    assert limits.counts()[("s1", "sec1")] == (3, 2)
