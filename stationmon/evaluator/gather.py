"""The rules' inputs: the latest value of every loop and station series as arrays, once per tick.

The series of every loop and station are registered with `LatestValues` once (`track`), which keeps
their arrays current as readings arrive: a tick copies arrays (about a millisecond for 100,000 loops)
instead of looking up every series. Household indoor sensors appear over MQTT as they report; the
new ones are learnt from `LatestValues.watch` and tracked from then on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.latest import LatestValues, SeriesKey, TrackedSeries
from stationmon.domain.model import StationState
from stationmon.domain.rules import LoopTable, RuleInputs, Series, in_heating_season
from stationmon.domain.settings import RulesSettings

__all__ = ["InputGatherer"]

_LOOP_QUANTITIES = ("supply_temp", "return_temp", "flow", "pump_running")
_STATION_QUANTITIES = ("outdoor_temp", "primary_supply_temp")
_INDOOR = "indoor_temp"


def _copy(tracked: TrackedSeries) -> Series:
    """This tick's view: the tracked arrays change as readings arrive."""
    return Series(tracked.value.copy(), tracked.ts.copy(), tracked.flagged.copy())


class InputGatherer:
    """Reads `LatestValues` and the pollers' station states into `RuleInputs`."""

    def __init__(
        self,
        table: LoopTable,
        latest: LatestValues,
        station_states: Mapping[str, StationState],
        *,
        timezone: str,
        rules: RulesSettings,
        started_at: float,
    ) -> None:
        self.table = table
        self.latest = latest
        self.station_states = station_states
        self.timezone = timezone
        self.rules = rules
        self.started_at = started_at
        stations = [table.station_of(i) for i in range(table.n_loops)]
        self._tracked: dict[str, TrackedSeries] = {
            q: latest.track((s, lp, None, q) for s, lp in zip(stations, table.loop_ids, strict=True))
            for q in _LOOP_QUANTITIES
        }
        for q in _STATION_QUANTITIES:
            self._tracked[q] = latest.track((s, None, None, q) for s in table.station_ids)
        self._last_seen = latest.track_last_seen(table.station_ids)
        self._states: list[StationState | None] = []  # by station index; the pollers update them in place
        self._n_states = -1
        self._new_indoor = latest.watch(_INDOOR)
        self._indoor = latest.track(())
        self._indoor_loop = np.zeros(0, dtype=np.int64)
        self._add_indoor_sensors(list(latest.latest))

    def gather(self, now: float) -> RuleInputs:
        """The latest values of every loop and station as arrays."""
        if self._new_indoor:
            new, self._new_indoor[:] = list(self._new_indoor), []
            self._add_indoor_sensors(new)
        rules, tracked = self.rules, self._tracked
        return RuleInputs(
            now=now,
            supply=_copy(tracked["supply_temp"]),
            return_=_copy(tracked["return_temp"]),
            flow=_copy(tracked["flow"]),
            pump_running=_copy(tracked["pump_running"]),
            outdoor=_copy(tracked["outdoor_temp"]),
            primary_supply=_copy(tracked["primary_supply_temp"]),
            station_last_seen=self._station_last_seen(),
            indoor=_copy(self._indoor),
            indoor_loop=self._indoor_loop,
            in_season=in_heating_season(now, self.timezone, rules.season_start, rules.season_end),
            started_at=self.started_at,
        )

    def _station_last_seen(self) -> FloatArray:
        """Per station: its newest reading or, if later, the poller's last successful poll (NaN: never)."""
        if len(self._states) != self.table.n_stations or len(self.station_states) != self._n_states:
            self._n_states = len(self.station_states)
            self._states = [self.station_states.get(sid) for sid in self.table.station_ids]
        nan = math.nan
        polled = np.fromiter(
            (nan if s is None or s.last_success is None else s.last_success for s in self._states),
            np.float64,
            len(self._states),
        )
        return np.fmax(self._last_seen, polled)  # fmax: NaN only where both are

    def _add_indoor_sensors(self, keys: list[SeriesKey]) -> None:
        """Track the household sensors among `keys` that belong to a configured loop, beside the known ones."""
        index = self.table.loop_index
        found = [k for k in keys if k[3] == _INDOOR and k[1] is not None and (k[0], k[1]) in index]
        if not found:
            return
        all_keys = list(self._indoor.keys) + found
        self.latest.untrack(self._indoor)
        self._indoor = self.latest.track(all_keys)
        self._indoor_loop = np.array([index[(k[0], k[1] or "")] for k in all_keys], dtype=np.int64)
