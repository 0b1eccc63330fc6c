"""The rule table: every rule's check, its message and the sensors it reads, one line per rule.

A new loop rule: a check in `checks.py`, a message in `messages.py`, a line here, and its name in
`vocabulary.RULE_NAMES` (and `COMPLIANCE_RULES`/`SEASONAL_RULES` if it judges compliance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import stationmon.domain.rules.checks as checks
import stationmon.domain.rules.messages as messages
from stationmon.domain.rules.checks import Check, LoopFacts, StationFacts
from stationmon.domain.settings import RuleSettings

__all__ = ["LOOP_RULE_TABLE", "STATION_RULE_TABLE", "LoopRule", "StationRule"]


class LoopRule(NamedTuple):
    """One loop rule: how it is judged, how it is described, what it reads."""

    judge: Callable[[LoopFacts, RuleSettings], Check]
    describe: Callable[[LoopFacts, Check, int, bool], str]
    # a fault on a quantity read suppresses the condition (supply_low/return_low on their floor skip outdoor)
    reads: frozenset[str]


class StationRule(NamedTuple):
    """One station rule: how it is judged and how it is described."""

    judge: Callable[[StationFacts, RuleSettings], Check]
    describe: Callable[[StationFacts, Check, int, bool], str]


_WATER_AND_OUTDOOR = frozenset({"supply_temp", "return_temp", "outdoor_temp"})

LOOP_RULE_TABLE: dict[str, LoopRule] = {
    "supply_low": LoopRule(checks.supply_low, messages.below_required, frozenset({"supply_temp", "outdoor_temp"})),
    "return_low": LoopRule(checks.return_low, messages.below_required, frozenset({"return_temp", "outdoor_temp"})),
    "indoor_estimate_low": LoopRule(checks.indoor_estimate_low, messages.indoor_estimate_low, _WATER_AND_OUTDOOR),
    "indoor_low": LoopRule(checks.indoor_low, messages.indoor_low, frozenset({"indoor_temp"})),
    "delta_t_low": LoopRule(checks.delta_t_low, messages.delta_t_low, _WATER_AND_OUTDOOR),
    "delta_t_high": LoopRule(checks.delta_t_high, messages.delta_t_high, _WATER_AND_OUTDOOR),
    "no_circulation": LoopRule(checks.no_circulation, messages.no_circulation, frozenset({"flow", "pump_running"})),
    "sensor_fault": LoopRule(checks.loop_sensor_fault, messages.loop_sensor_fault, frozenset()),
}

STATION_RULE_TABLE: dict[str, StationRule] = {
    "station_offline": StationRule(checks.station_offline, messages.station_offline),
    "primary_shortage": StationRule(checks.primary_shortage, messages.primary_shortage),
    "sensor_fault": StationRule(checks.station_sensor_fault, messages.station_sensor_fault),
}
