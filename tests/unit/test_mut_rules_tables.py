"""The loop table and the engine's construction: each test names the one-line bugs (surviving mutants) it catches.

The site's facts other than the defaults (design indoor temperature, refund tier, time zone), the return
probe's own point facts, plants with no loops or no stations, stations that name no company, and a
household list with an empty flag list. One radiator loop (75/50, m 1.3) of station s1 unless said otherwise.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from stationmon.domain.plant import DailyWindow, Setback, Site, Station
from stationmon.domain.rules import LoopTable, RuleEngine, RuleInputs, Series
from stationmon.domain.rules.faults import FAULT_FLATLINE
from stationmon.domain.rules.inputs import PointFacts
from stationmon.domain.settings import RulesSettings
from tests.unit.test_rules_edges import NOW, RADIATOR, make_inputs

_UNSMOOTHED = RulesSettings(outdoor_smoothing_s=0.0, water_smoothing_s=0.0)


def _engine(site: Site, points: dict[str, PointFacts] | None = None) -> RuleEngine:
    return RuleEngine(LoopTable.build([("s1", "d1")], [RADIATOR], site, points=points), _UNSMOOTHED)


def test_the_curve_uses_the_sites_design_indoor_temperature() -> None:
    """A site whose radiators were sized for 20 °C indoors (75/50 at -24.2 °C outdoor, target 18 °C): at
    -10 °C the relative load is 28/44.2 and the mean water excess over the design room 42.5 K, so the
    required supply is 18 + 42.5·(28/44.2)^(1/1.3) + 12.5·(28/44.2) = 55.83 °C (by hand, EN 442 curve).

    Catches `design_indoor` dropped from the engine's Design (the 18 °C default: 28/42.2 and 44.5 K give
    58.75 °C, every loop of such a site asked 2.9 K too much) and dropped from `LoopTable.build`."""
    q = 28.0 / 44.2
    expected = 18.0 + 42.5 * q ** (1.0 / 1.3) + 12.5 * q
    assert expected == pytest.approx(55.83, abs=0.01)
    r = _engine(Site(indoor_target=18.0, design_indoor=20.0)).evaluate(make_inputs(70.0, 50.0))
    assert float(r.required_supply[0]) == pytest.approx(expected, rel=1e-12)
    default = _engine(Site(indoor_target=18.0)).evaluate(make_inputs(70.0, 50.0))
    q18 = 28.0 / 42.2
    assert float(default.required_supply[0]) == pytest.approx(18.0 + 44.5 * q18 ** (1.0 / 1.3) + 12.5 * q18)


def test_the_refund_tier_is_the_sites() -> None:
    """A city whose refund tier is 15 °C: of household readings 14.0, 15.5 and 17.0 °C one is below it
    (15.5 is under 16 but above 15), and all three are below the 18 °C target.

    Catches `indoor_refund_below` dropped from `LoopTable.build` (the 16 °C default: two refunds)."""
    site = Site(indoor_target=18.0, indoor_refund_below=15.0)
    r = _engine(site).evaluate(make_inputs(70.0, 50.0, indoor=(14.0, 15.5, 17.0)))
    assert r.indoor_below_refund.tolist() == [1]
    assert r.loops.indoor_facts.below_target.tolist() == [3]


def test_inspection_hours_are_in_the_sites_time_zone() -> None:
    """NOW is 22:13 UTC (06:13 in Shanghai): a site in UTC that excludes 22:00-23:00 from inspections is in
    its excluded hour; the same window in Shanghai time is not.

    Catches `timezone` dropped from `LoopTable.build` (every site judged on Shanghai's clock)."""
    local = dt.datetime.fromtimestamp(NOW, zoneinfo.ZoneInfo("UTC"))
    assert (local.hour, local.minute) == (22, 13)
    window = (DailyWindow(22 * 60, 23 * 60),)
    utc = _engine(Site(timezone="UTC", inspection_exclude=window)).evaluate(make_inputs(70.0, 50.0))
    assert utc.inspection_hour is False
    shanghai = _engine(Site(inspection_exclude=window)).evaluate(make_inputs(70.0, 50.0))
    assert shanghai.inspection_hour is True


def _return_run(eng: RuleEngine, minutes: int) -> int:
    """Feed a still return probe every 5 minutes (gaps under a quarter window) for `minutes`, the supply
    moving by 0.5 K; the return probe's last bits."""
    bits = 0
    for k in range(0, minutes * 60 + 1, 300):
        inp = make_inputs(70.0 + 0.5 * ((k // 300) % 2), 50.0, now=NOW + k + 1)
        for s in (inp.supply, inp.return_, inp.outdoor):
            s.ts[:] = NOW + k
        inp.station_last_seen = np.array([NOW + k])
        bits = int(eng.evaluate(inp).return_faults[0])
    return bits


@pytest.mark.parametrize(
    ("facts", "flat"),
    [
        ({"resolution": 0.5}, False),  # int16 x 0.5: window 30 min x (0.5 / 0.05) = 5 h
        ({"tolerance": 0.2}, False),  # its own flatline_tolerance 0.2 K: window 2 h
        ({}, True),  # a float probe with no tolerance of its own: 30 min
    ],
)
def test_the_return_probe_is_judged_at_its_own_resolution(facts: dict[str, float], flat: bool) -> None:
    """A return probe that reads the same for 35 minutes: a coarse or tolerant point needs longer than the
    30-minute default window to prove it is stuck, a plain float point is flat.

    Catches the return tracker built without the return point's facts (quantity None, "XXreturn_tempXX",
    "RETURN_TEMP": the 0.05 K default would call the coarse probe flat after 30 minutes)."""
    point = PointFacts(
        configured=np.array([True]),
        tolerance=np.array([facts.get("tolerance", np.nan)]),
        resolution=np.array([facts.get("resolution", 0.0)]),
    )
    eng = _engine(Site(indoor_target=18.0), points={"return_temp": point})
    assert _return_run(eng, 35) == (FAULT_FLATLINE if flat else 0)


def _empty_inputs(n_loops: int, n_stations: int) -> RuleInputs:
    ts = NOW - 5
    return RuleInputs(
        now=NOW,
        supply=Series.empty(n_loops),
        return_=Series.empty(n_loops),
        flow=Series.empty(n_loops),
        outdoor=Series.of([-5.0] * n_stations, [ts] * n_stations),
        primary_supply=Series.empty(n_stations),
        station_last_seen=np.full(n_stations, ts),
    )


def test_a_station_with_no_loops_is_still_judged_online() -> None:
    """A station configured with only its outdoor probe (no loops yet): the engine judges it online.

    Catches the loop-to-station index built without its integer dtype (an empty list makes a float
    array, and indexing the stations by it raises IndexError on every evaluation)."""
    table = LoopTable.build([("s1", "d1")], [], Site())
    assert table.loop_station.dtype == np.int64
    r = RuleEngine(table, _UNSMOOTHED).evaluate(_empty_inputs(0, 1))
    assert r.station_checks["station_offline"].judged.tolist() == [True]
    assert r.stations.offline.tolist() == [False]
    assert r.status.tolist() == []


def test_an_empty_plant_evaluates_to_nothing() -> None:
    """A plant with no stations yet (a new city being configured) evaluates to empty results, site-wide
    setbacks or not.

    Catches `(None,) / n_stations` for `*` in the setback grouping (TypeError for a table with no
    per-station setbacks) and the float loop index of an empty table."""
    settings = RulesSettings(setbacks=(Setback(DailyWindow(0, 1440), 2.0),))
    r = RuleEngine(LoopTable.build([], [], Site()), settings).evaluate(_empty_inputs(0, 0))
    assert r.status.tolist() == [] and r.stations.offline.tolist() == []


def test_a_table_made_without_station_setbacks_follows_the_site_wide_ones() -> None:
    """A LoopTable made directly (its `station_setbacks` left empty): every station follows the site-wide
    setback, here 2 K all day.

    Catches `(None,) / n_stations` for `*` (TypeError instead of the site-wide setbacks)."""
    built = LoopTable.build([("s1", "d1")], [RADIATOR], Site(indoor_target=18.0))
    direct = LoopTable(
        station_ids=built.station_ids,
        districts=built.districts,
        loop_ids=built.loop_ids,
        loop_station=built.loop_station,
        design_supply=built.design_supply,
        design_return=built.design_return,
        exponent=built.exponent,
        min_supply=built.min_supply,
        min_return=built.min_return,
        design_flow=built.design_flow,
    )
    settings = RulesSettings(
        outdoor_smoothing_s=0.0, water_smoothing_s=0.0, setbacks=(Setback(DailyWindow(0, 1440), 2.0),)
    )
    r = RuleEngine(direct, settings).evaluate(make_inputs(70.0, 50.0))
    assert r.setback.tolist() == [True]
    assert r.loops.setback_k.tolist() == [2.0]


def test_stations_built_without_companies_name_none_like_a_plant_of_company_less_stations() -> None:
    """`LoopTable.build` without companies gives every station "" (no company), exactly what a plant of
    stations that name none gives; alerts and the company pages group by it.

    Catches the default companies "XXXX" (every station of such a table in a company called XXXX)."""
    site = Site()
    plant = LoopTable.from_plant(site, [Station("s1", district="d1"), Station("s2", district="d2")])
    built = LoopTable.build([("s1", "d1"), ("s2", "d2")], [], site)
    assert built.companies == plant.companies == ("", "")


def test_an_empty_household_list_with_an_empty_flag_list_is_no_household_reading() -> None:
    """A collector that states its flags for an empty household list (`flagged=[]`): the loop has no
    household sensors, and the water model judges it.

    Catches `Series.of` dropping the bool dtype of `flagged` (dtype None or left out: an empty list becomes
    a float array, and `~flagged` raises TypeError in the household facts)."""
    inp = make_inputs(70.0, 50.0)
    inp.indoor = Series.of([], [], flagged=[])
    assert inp.indoor.flagged.dtype == np.bool_
    r = _engine(Site(indoor_target=18.0)).evaluate(inp)
    assert r.loops.indoor_facts.fresh.tolist() == [0]
    assert r.status_name(0) == "ok"
