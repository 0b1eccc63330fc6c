"""Durations as users write them: "500ms", "10s", "5m", "24h", "2d", "1h30m". Pure."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse "500ms", "10s", "5m", "24h", "1h30m" into seconds; ValueError if malformed."""
    text = text.strip()
    if not _DURATION_RE.match(text):
        raise ValueError(text)
    return sum(float(n) * _UNIT_S[u] for n, u in _PART_RE.findall(text))
