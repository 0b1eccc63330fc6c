"""Loop rules: judge every loop of every station at once, from arrays of the latest values.

inputs.py    the plant as arrays (LoopTable), latest values (Series, RuleInputs), season, online
faults.py    fault bits; plausible range and sentinel test (the vocabulary's table); SensorTracker
             (flatline, rate of change)
checks.py    one function per rule: facts + settings -> Check
messages.py  one function per rule: the human message
table.py     the rule table
engine.py    RuleEngine: facts, rules, status
results.py   RuleResults: statuses, numbers, conditions for the alert book
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
