"""`[rules]` and `[rules.<name>]` -> the domain's RulesSettings; a rule table falls back to `[rules]`."""

from __future__ import annotations

import re
from dataclasses import replace

from stationmon.config.reader import Table, suggest
from stationmon.domain.settings import RULE_OPTIONS, RuleSettings, RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES, SEVERITIES

__all__ = ["read_rules"]

_MARGIN_K = (0.0, 30.0)
_MMDD_RE = re.compile(r"^(\d{2})-(\d{2})$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def read_rules(root: Table) -> RulesSettings:
    """`[rules]`: timing, season and escalation, then every rule's own table over those."""
    t = root.table_or_empty("rules")
    d = RulesSettings()
    base = RulesSettings(
        evaluate_every_s=t.duration("evaluate_every", d.evaluate_every_s, allow_zero=False),
        for_s=t.duration("for", d.for_s),
        clear_for_s=t.duration("clear_for", d.clear_for_s),
        margin=t.number("margin", d.margin, lo=_MARGIN_K[0], hi=_MARGIN_K[1]),
        offline_after_s=t.duration("offline_after", d.offline_after_s, allow_zero=False),
        season_start=_mmdd(t, "season_start", d.season_start),
        season_end=_mmdd(t, "season_end", d.season_end),
        escalate_major_after_s=t.duration("escalate_major_after", d.escalate_major_after_s, allow_zero=False),
        escalate_critical_after_s=t.duration("escalate_critical_after", d.escalate_critical_after_s, allow_zero=False),
        outdoor_smoothing_s=t.duration("outdoor_smoothing", d.outdoor_smoothing_s),
        state_file=t.text("state_file", d.state_file),
    )
    if base.escalate_critical_after_s <= base.escalate_major_after_s:
        t.add("escalate_critical_after", "must be later than escalate_major_after")
    rules = {name: _rule(t.table_or_empty(name), base.rule(name)) for name in RULE_NAMES}
    for name, value in t.data.items():
        if isinstance(value, dict) and name not in t.known:
            t.known.add(name)
            t.add(name, f"unknown rule{suggest(name, RULE_NAMES)} (rules: {', '.join(RULE_NAMES)})")
    t.finish()
    return replace(base, rules=rules)


def _mmdd(t: Table, name: str, default: tuple[int, int]) -> tuple[int, int]:
    value = t.text(name, None)
    if value is None:
        return default
    m = _MMDD_RE.match(value)
    if not m or not (1 <= int(m[1]) <= 12 and 1 <= int(m[2]) <= _DAYS_IN_MONTH[int(m[1]) - 1]):
        t.add(name, f'expected a date as MM-DD such as "10-20", got {value!r}')
        return default
    return int(m[1]), int(m[2])


def _rule(t: Table, d: RuleSettings) -> RuleSettings:
    """One `[rules.<name>]` table over the rule's defaults `d`; rule-specific keys only where they apply."""
    settings = replace(
        d,
        enabled=t.flag("enabled", d.enabled),
        for_s=t.duration("for", d.for_s),
        clear_for_s=t.duration("clear_for", d.clear_for_s),
        margin=t.number("margin", d.margin, lo=_MARGIN_K[0], hi=_MARGIN_K[1]),
        severity=t.choice("severity", SEVERITIES, d.severity, "severity"),
    )
    for key in RULE_OPTIONS.get(d.name, ()):
        settings = _option(t, key, settings)
    t.finish()
    return settings


def _option(t: Table, key: str, s: RuleSettings) -> RuleSettings:
    """`s` with the rule-specific TOML key `key` applied."""
    if key == "min_sensors":
        return replace(s, min_sensors=t.integer(key, s.min_sensors, lo=1))
    if key == "min_share":
        return replace(s, min_share=t.number(key, s.min_share, lo=0.0, hi=1.0))
    if key == "ratio":
        return replace(s, ratio=t.number(key, s.ratio, lo=0.0))
    if key == "min_expected_delta_t":
        return replace(s, min_expected_delta_t=t.number(key, s.min_expected_delta_t, lo=0.0))
    if key == "flatline_window":
        return replace(s, flatline_window_s=t.duration(key, s.flatline_window_s))
    if key == "flatline_tolerance":
        return replace(s, flatline_tolerance=t.number(key, s.flatline_tolerance, lo=0.0))
    if key == "max_rate_per_min":
        return replace(s, max_rate_per_min=t.number(key, s.max_rate_per_min, lo=0.0))
    raise KeyError(f"RULE_OPTIONS names {key!r}, which no reader handles")
