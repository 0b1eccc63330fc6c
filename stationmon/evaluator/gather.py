"""The rules' inputs: the latest value of every loop and station series as arrays, once per tick."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from stationmon.domain.heating import FloatArray
from stationmon.domain.latest import LatestValues, SeriesKey
from stationmon.domain.model import StationState
from stationmon.domain.rules import LoopTable, RuleInputs, Series, in_heating_season
from stationmon.domain.settings import RulesSettings

__all__ = ["InputGatherer"]

_LOOP_QUANTITIES = ("supply_temp", "return_temp", "flow", "pump_running")
_STATION_QUANTITIES = ("outdoor_temp", "primary_supply_temp")


class InputGatherer:
    """Reads `LatestValues` and the pollers' station states into `RuleInputs`.

    The series keys of every loop and station are built once; household indoor sensors appear over
    MQTT as they report, so they are looked for again only when a new series has appeared.
    """

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
        self._keys: dict[str, list[SeriesKey]] = {
            q: [(s, lp, None, q) for s, lp in zip(stations, table.loop_ids, strict=True)] for q in _LOOP_QUANTITIES
        }
        self._station_keys: dict[str, list[SeriesKey]] = {
            q: [(s, None, None, q) for s in table.station_ids] for q in _STATION_QUANTITIES
        }
        self._indoor_keys: list[SeriesKey] = []
        self._indoor_loop = np.zeros(0, dtype=np.int64)
        self._latest_size = -1

    def gather(self, now: float) -> RuleInputs:
        """The latest values of every loop and station as arrays."""
        if len(self.latest.latest) != self._latest_size:
            self._find_indoor_sensors()
        rules = self.rules
        return RuleInputs(
            now=now,
            supply=self._series(self._keys["supply_temp"]),
            return_=self._series(self._keys["return_temp"]),
            flow=self._series(self._keys["flow"]),
            pump_running=self._series(self._keys["pump_running"]),
            outdoor=self._series(self._station_keys["outdoor_temp"]),
            primary_supply=self._series(self._station_keys["primary_supply_temp"]),
            station_last_seen=self._last_seen(),
            indoor=self._series(self._indoor_keys),
            indoor_loop=self._indoor_loop,
            in_season=in_heating_season(now, self.timezone, rules.season_start, rules.season_end),
            started_at=self.started_at,
        )

    def _series(self, keys: Sequence[SeriesKey]) -> Series:
        get, nan = self.latest.latest.get, math.nan
        samples = [get(k) for k in keys]
        n = len(samples)
        return Series(
            np.fromiter((nan if s is None else s.value for s in samples), np.float64, n),
            np.fromiter((nan if s is None else s.ts for s in samples), np.float64, n),
            np.fromiter((s is not None and s.fault is not None for s in samples), np.bool_, n),
        )

    def _last_seen(self) -> FloatArray:
        """Per station: its newest reading or, if later, the poller's last successful poll (NaN: never)."""
        last_seen = np.full(self.table.n_stations, np.nan)
        for i, sid in enumerate(self.table.station_ids):
            seen = self.latest.last_seen.get(sid)
            state = self.station_states.get(sid)
            if state is not None and state.last_success is not None:
                seen = state.last_success if seen is None else max(seen, state.last_success)
            if seen is not None:
                last_seen[i] = seen
        return last_seen

    def _find_indoor_sensors(self) -> None:
        index = self.table.loop_index
        keys = [k for k in self.latest.latest if k[3] == "indoor_temp" and k[1] is not None and (k[0], k[1]) in index]
        self._indoor_keys = keys
        self._indoor_loop = np.array([index[(k[0], k[1] or "")] for k in keys], dtype=np.int64)
        self._latest_size = len(self.latest.latest)
