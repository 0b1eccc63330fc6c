"""Loop rules: judge every loop of every station at once, from arrays of the latest values.

inputs -> engine (faults once, then every rule of `table`: a check and a message) -> results.
"""

from __future__ import annotations

from stationmon.domain.rules.engine import SWAP_TOLERANCE_K, RuleEngine
from stationmon.domain.rules.inputs import LoopTable, RuleInputs, Series, in_heating_season, station_online
from stationmon.domain.rules.results import RuleResults

__all__ = [
    "SWAP_TOLERANCE_K",
    "LoopTable",
    "RuleEngine",
    "RuleInputs",
    "RuleResults",
    "Series",
    "in_heating_season",
    "station_online",
]
