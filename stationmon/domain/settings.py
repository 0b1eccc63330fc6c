"""How the rules are tuned: the `[rules]` table and one rule's settings, with every default stated once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stationmon.domain.plant import Setback

__all__ = ["RULE_DEFAULTS", "RULE_OPTIONS", "RuleSettings", "RulesSettings"]


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """One rule's settings; general ones fall back to `[rules]`, the rest have rule defaults."""

    name: str
    enabled: bool = True
    for_s: float = 600.0
    clear_for_s: float = 600.0
    margin: float = 1.0
    severity: str = "warning"
    # indoor_low: fire when at least `min_sensors` sensors AND at least `min_share` of them are low
    # (min_share 0 turns the share test off)
    min_sensors: int = 1
    min_share: float = 0.0
    # delta_t_low / delta_t_high: measured ΔT below ratio x expected / above ratio x expected
    ratio: float = 0.5
    # delta_t_*: ignore loops whose expected ΔT is below this (mild weather)
    min_expected_delta_t: float = 2.0
    # sensor_fault (the window and tolerance grow for points coarser than the tolerance)
    flatline_window_s: float = 1800.0
    flatline_tolerance: float = 0.05
    max_rate_per_min: float = 5.0
    stale_after_s: float = 0.0  # a point older than this while its station answers is stale; 0: offline_after
    hysteresis: float = 0.5
    # primary_shortage: K the primary supply must exceed the required secondary supply by (plate exchanger)
    approach: float = 5.0


# Defaults that differ from RuleSettings' own, by rule.
RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "station_offline": {"severity": "major"},
    "delta_t_high": {"ratio": 2.0},
    # the legal minimum is exact: below indoor_target is major, below indoor_refund_below critical
    "indoor_low": {"margin": 0.0, "severity": "major"},
    "no_circulation": {"severity": "critical", "margin": 0.0},
    "primary_shortage": {"severity": "major", "margin": 0.0},
}
# Rule-specific TOML keys (besides enabled, for, clear_for, margin, severity) each rule accepts.
RULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "indoor_low": ("min_sensors", "min_share"),
    "delta_t_low": ("ratio", "min_expected_delta_t"),
    "delta_t_high": ("ratio", "min_expected_delta_t"),
    "sensor_fault": ("flatline_window", "flatline_tolerance", "max_rate_per_min", "stale_after"),
    "primary_shortage": ("approach",),
}


@dataclass(frozen=True, slots=True)
class RulesSettings:
    """The `[rules]` table: timing, season, escalation, smoothing and every rule's settings."""

    evaluate_every_s: float = 10.0
    for_s: float = 600.0
    clear_for_s: float = 600.0
    margin: float = 1.0
    offline_after_s: float = 60.0
    season_start: tuple[int, int] = (10, 20)
    season_end: tuple[int, int] = (4, 20)
    escalate_major_after_s: float = 86400.0
    escalate_critical_after_s: float = 172800.0
    outdoor_smoothing_s: float = 43200.0  # the buildings' inertia: half a day
    water_smoothing_s: float = 1800.0  # supply/return are judged on their running mean
    min_flow: float = 1.0  # m³/h: below it a loop does not circulate
    min_flow_share: float = 0.1  # ... nor below this share of its design_flow
    exempt_below_design: bool = False  # hours below outdoor_design do not count as noncompliant
    setbacks: tuple[Setback, ...] = ()  # site-wide [[rules.setback]]; a station's own replace them
    state_file: str = ""
    rules: Mapping[str, RuleSettings] = field(default_factory=dict)

    def rule(self, name: str) -> RuleSettings:
        """Settings of one rule: as configured, else the rule's defaults under this table's timing."""
        found = self.rules.get(name)
        if found is not None:
            return found
        base = RuleSettings(name=name, for_s=self.for_s, clear_for_s=self.clear_for_s, margin=self.margin)
        return replace(base, **RULE_DEFAULTS.get(name, {}))
