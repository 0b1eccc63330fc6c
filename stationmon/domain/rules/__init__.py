"""Loop rules: judge every loop of every station at once, from arrays of the latest values.

The evaluator gathers the latest values into `RuleInputs`; `RuleEngine.evaluate` computes the facts
(sensor faults, the heating model) once and runs every rule of the table (`table.py`: one check
function in `checks.py` and one message function in `messages.py` per rule) into `RuleResults`: per
loop a status, the required temperatures, the estimated indoor temperature, ΔT, and one `Check` per
rule. `RuleResults.conditions()` turns the active checks into the `Condition`s the alert book takes.

    inputs.py    the plant as arrays (LoopTable), latest values (Series, RuleInputs), season, online
    faults.py    fault bits; plausible range and sentinel test (the vocabulary's table)
    tracker.py   flatline and rate of change (SensorTracker)
    checks.py    one function per rule: facts + settings -> Check
    messages.py  one function per rule: the human message
    table.py     the rule table
    engine.py    RuleEngine: facts, rules, status
    results.py   RuleResults: statuses, numbers, conditions for the alert book
"""

from __future__ import annotations

from stationmon.domain.rules.checks import INDOOR_MAX_AGE_S, Check, LoopFacts, StationFacts
from stationmon.domain.rules.engine import MIN_FLOW, PRIMARY_TOLERANCE_K, SWAP_TOLERANCE_K, RuleEngine
from stationmon.domain.rules.faults import (
    FAULT_FLAGGED,
    FAULT_FLATLINE,
    FAULT_PRIMARY,
    FAULT_RANGE,
    FAULT_RATE,
    FAULT_SENTINEL,
    FAULT_SWAPPED,
    describe_faults,
    quantity_faults,
    range_faults,
)
from stationmon.domain.rules.inputs import (
    LoopTable,
    RuleInputs,
    Series,
    in_heating_season,
    reading_age,
    station_online,
)
from stationmon.domain.rules.results import STATUS_CODES, RuleResults
from stationmon.domain.rules.table import LOOP_RULE_TABLE, STATION_RULE_TABLE
from stationmon.domain.rules.tracker import SensorTracker

__all__ = [
    "FAULT_FLAGGED",
    "FAULT_FLATLINE",
    "FAULT_PRIMARY",
    "FAULT_RANGE",
    "FAULT_RATE",
    "FAULT_SENTINEL",
    "FAULT_SWAPPED",
    "INDOOR_MAX_AGE_S",
    "LOOP_RULE_TABLE",
    "MIN_FLOW",
    "PRIMARY_TOLERANCE_K",
    "STATION_RULE_TABLE",
    "STATUS_CODES",
    "SWAP_TOLERANCE_K",
    "Check",
    "LoopFacts",
    "LoopTable",
    "RuleEngine",
    "RuleInputs",
    "RuleResults",
    "SensorTracker",
    "Series",
    "StationFacts",
    "describe_faults",
    "in_heating_season",
    "quantity_faults",
    "range_faults",
    "reading_age",
    "station_online",
]
