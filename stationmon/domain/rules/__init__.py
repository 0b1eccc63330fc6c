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

from stationmon.domain.rules.checks import Check
from stationmon.domain.rules.engine import SWAP_TOLERANCE_K, RuleEngine
from stationmon.domain.rules.faults import (
    FAULT_FLAGGED,
    FAULT_FLATLINE,
    FAULT_PRIMARY,
    FAULT_RANGE,
    FAULT_RATE,
    FAULT_SENTINEL,
    FAULT_SWAPPED,
    describe_faults,
    range_faults,
)
from stationmon.domain.rules.inputs import LoopTable, RuleInputs, Series, in_heating_season, station_online
from stationmon.domain.rules.results import RuleResults

__all__ = [
    "FAULT_FLAGGED",
    "FAULT_FLATLINE",
    "FAULT_PRIMARY",
    "FAULT_RANGE",
    "FAULT_RATE",
    "FAULT_SENTINEL",
    "FAULT_SWAPPED",
    "SWAP_TOLERANCE_K",
    "Check",
    "LoopTable",
    "RuleEngine",
    "RuleInputs",
    "RuleResults",
    "Series",
    "describe_faults",
    "in_heating_season",
    "range_faults",
    "station_online",
]
