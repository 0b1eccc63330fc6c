"""`[rules]` and `[rules.<name>]` -> the domain's RulesSettings; a rule table falls back to `[rules]`."""

from __future__ import annotations

import re
from dataclasses import replace

from stationmon.config.reader import Table, suggest
from stationmon.domain.plant import DailyWindow, Setback
from stationmon.domain.settings import RULE_OPTIONS, RuleSettings, RulesSettings
from stationmon.domain.vocabulary import RULE_NAMES, SEVERITIES

__all__ = ["parse_daily_window", "read_rules", "read_setbacks"]

_MARGIN_K = (0.0, 30.0)
_SETBACK_K = (0.0, 30.0)
_MMDD_RE = re.compile(r"^(\d{2})-(\d{2})$")
_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
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
        water_smoothing_s=t.duration("water_smoothing", d.water_smoothing_s),
        min_flow=t.number("min_flow", d.min_flow, lo=0.0),
        min_flow_share=t.number("min_flow_share", d.min_flow_share, lo=0.0, hi=1.0),
        exempt_below_design=t.flag("exempt_below_design", d.exempt_below_design),
        setbacks=read_setbacks(t, "setback"),
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


def _minute(t: Table, name: str, text: str) -> int | None:
    m = _HHMM_RE.match(text.strip())
    if not m or int(m[1]) > 24 or int(m[2]) > 59 or (int(m[1]) == 24 and int(m[2]) != 0):
        t.add(name, f'expected a local time as HH:MM such as "10:00", got {text!r}')
        return None
    return int(m[1]) * 60 + int(m[2])


def parse_daily_window(t: Table, name: str, text: str) -> DailyWindow | None:
    """ "HH:MM-HH:MM" (local; wraps midnight when the end is not later) or None with a problem at `name`."""
    start, sep, end = text.partition("-")
    if not sep:
        t.add(name, f'expected local hours as "HH:MM-HH:MM" such as "10:00-14:00", got {text!r}')
        return None
    lo, hi = _minute(t, name, start), _minute(t, name, end)
    if lo is None or hi is None:
        return None
    if lo % 1440 == hi % 1440:
        t.add(name, f"{text!r} is empty: its start and end are the same time")
        return None
    return DailyWindow(lo % 1440, hi % 1440)


def read_setbacks(t: Table, name: str) -> tuple[Setback, ...]:
    """`[[<table>.setback]]`: from, to (local HH:MM) and kelvin, each a planned reduction."""
    found: list[Setback] = []
    for _, st in t.tables(name):
        start, end = st.text("from", None), st.text("to", None)
        kelvin = st.number("kelvin", None, lo=_SETBACK_K[0], hi=_SETBACK_K[1])
        for key, value in (("from", start), ("to", end), ("kelvin", kelvin)):
            if value is None and key not in st.data:
                st.add(key, "missing: a setback needs from, to and kelvin")
        window = parse_daily_window(st, "to", f"{start}-{end}") if start is not None and end is not None else None
        if window is not None and kelvin is not None:
            found.append(Setback(window, kelvin))
        st.finish()
    return tuple(found)


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
    if key == "stale_after":
        return replace(s, stale_after_s=t.duration(key, s.stale_after_s))
    if key == "approach":
        return replace(s, approach=t.number(key, s.approach, lo=0.0, hi=30.0))
    raise KeyError(f"RULE_OPTIONS names {key!r}, which no reader handles")
