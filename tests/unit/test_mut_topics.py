"""Topic templates, routes, subscription filters and shard filters at their edges: each test names its bug."""

from __future__ import annotations

import pytest

from stationmon.domain.model import Reading
from stationmon.domain.payloads import PayloadSpec, Route
from stationmon.domain.plant import Loop, Point, Station
from stationmon.domain.shards import MAX_SHARDS, ShardSpec, narrowed_filters
from stationmon.domain.topics import SeriesLimits, Subscription, TopicRouter, compile_template

STATIONS = [
    Station(
        id="s1",
        loops=(Loop("sec1"),),
        points=(
            Point("indoor_temp", loop="sec1", sensor="flat-3", topic="vendor/s1/flat-3", format="json", time_key="ts"),
        ),
    ),
    Station(id="s2", loops=(Loop("sec1"),)),
]


def test_a_point_route_keeps_its_sensor_and_time_key() -> None:
    """A point's sensor names its household series; its time key says where the payload's time is (dropping
    it would read "time" and stamp every reading at receipt)."""
    router = TopicRouter(STATIONS, [])
    assert router.route("vendor/s1/flat-3") == (
        Route("s1", "sec1", "indoor_temp", "flat-3", PayloadSpec("json", "value", "ts")),
    )


@pytest.mark.parametrize(
    ("template", "expected_filter"),
    [
        ("heat/{station}/xloopx/{quantity}", "heat/+/xloopx/+"),  # a literal that only contains a field name
        ("heat/{station}/{loop/{quantity}", "heat/+/{loop/+"),  # a level that only starts with "{"
        ("heat/{station}/loop}/{quantity}", "heat/+/loop}/+"),
    ],
)
def test_only_a_whole_placeholder_level_is_a_capture(template: str, expected_filter: str) -> None:
    compiled = compile_template(Subscription(template))
    assert compiled.filter == expected_filter
    assert [name for name, _ in compiled.captures] == ["station", "quantity"]


def test_a_trailing_hash_also_matches_the_parent_level() -> None:
    """MQTT: `a/#` matches `a` itself; so does the template (`>` for `>=` would refuse it)."""
    router = TopicRouter(STATIONS, [Subscription("site/{station}/{quantity}/#", format="json")])
    assert router.route("site/s2/outdoor_temp") == (Route("s2", None, "outdoor_temp", None, PayloadSpec("json")),)
    assert router.route("site/s2/outdoor_temp/a/b") == router.route("site/s2/outdoor_temp")
    assert router.route("site/s2") == "no_match"


def test_a_template_without_a_station_names_no_station() -> None:
    router = TopicRouter(STATIONS, [Subscription("heat/{loop}/{quantity}")])
    assert router.route("heat/sec1/supply_temp") == "unknown_station"


def test_a_plain_template_without_a_quantity_is_bad_quantity() -> None:
    """A plain payload is one number: without a quantity from the topic or the config it cannot be stored."""
    router = TopicRouter(STATIONS, [Subscription("heat/{station}/{loop}")])
    assert router.route("heat/s1/sec1") == "bad_quantity"
    fields = TopicRouter(STATIONS, [Subscription("heat/{station}/{loop}", format="json_fields")])
    assert fields.route("heat/s1/sec1") == (Route("s1", "sec1", None, None, PayloadSpec("json_fields")),)


def test_series_counts_include_loops_with_quantities_but_no_sensors() -> None:
    limits = SeriesLimits(max_sensors=5, max_quantities=5)
    assert limits.admit(Reading("s1", "valve_position", 1.0, 1.0, loop="sec1", source="mqtt"))
    assert limits.admit(Reading("s2", "indoor_temp", 1.0, 1.0, loop="sec1", sensor="b1", source="mqtt"))
    assert limits.counts() == {("s1", "sec1"): (0, 1), ("s2", "sec1"): (1, 0)}


# ------------------------------------------------------------------------------ broker filters


def test_filters_take_the_highest_qos_of_a_filter_and_qos_0_stays_0() -> None:
    """Two templates with one filter: the higher QoS, whatever their order (the last one's, or a floor of 1,
    would be wrong); a QoS 0 template and QoS 0 points stay at 0."""
    subs = [
        Subscription("heat/{station}/{loop}/{quantity}", qos=2),
        Subscription("heat/{station}/{quantity}/{loop}", qos=0),  # the same filter heat/+/+/+
        Subscription("cheap/{station}/{quantity}", qos=0),
    ]
    router = TopicRouter(STATIONS, subs, point_qos=0)
    assert router.filters() == [("heat/+/+/+", 2), ("cheap/+/+", 0), ("vendor/s1/flat-3", 0)]


def test_point_topics_are_subscribed_at_qos_1_by_default() -> None:
    assert TopicRouter(STATIONS, []).filters() == [("vendor/s1/flat-3", 1)]


def test_narrowed_filters_keep_the_highest_qos_and_every_template() -> None:
    """A template without `{station}` keeps its filter at its highest QoS and does not end the list (a
    `break` for `continue` would drop the templates after it); narrowed filters take the highest QoS too."""
    templates = [
        compile_template(Subscription("all/{loop}/{quantity}", qos=2)),
        compile_template(Subscription("all/{loop}/{quantity}", qos=0)),
        compile_template(Subscription("heat/{station}/{loop}", qos=2)),
        compile_template(Subscription("heat/{station}/{quantity}", qos=0)),  # heat/s1/+ again
        compile_template(Subscription("cool/{station}/{quantity}", qos=0)),
    ]
    assert narrowed_filters(templates, ["vendor/s1/x"], ["s1"], point_qos=0) == [
        ("all/+/+", 2),
        ("heat/s1/+", 2),
        ("cool/s1/+", 0),
        ("vendor/s1/x", 0),
    ]
    assert narrowed_filters(templates[4:], [], ["s1"]) == [("cool/s1/+", 0)]  # no $share prefix by default
    assert narrowed_filters(templates[1:2], [], ["s1"]) == [("all/+/+", 0)]


@pytest.mark.parametrize(("count", "ok"), [(MAX_SHARDS, True), (MAX_SHARDS + 1, False), (0, False)])
def test_up_to_4096_shards(count: int, ok: bool) -> None:
    if ok:
        assert ShardSpec(count - 1, count).count == MAX_SHARDS
        return
    with pytest.raises(ValueError) as caught:
        ShardSpec(0, count)
    assert str(caught.value) == f"the number of shards must be 1..4096, got {count}"
