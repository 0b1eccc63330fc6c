"""The evaluator: the periodic judgement of every loop, with its I/O (lines, events, the state file).

core.py         Evaluator: the tick (rules, alert book, lines, events) and its schedule
gather.py       InputGatherer: LatestValues and station states -> RuleInputs
state_file.py   StateFile: load, atomic save (off the event loop under run())
status_view.py  LoopStatusView (the latest judgement per loop), the station documents of the API
status_pages.py StatusPages: summary and filtered pages, built once per evaluation, with ETags
"""

from __future__ import annotations

from stationmon.evaluator.core import Evaluator
from stationmon.evaluator.status_view import LoopStatus

__all__ = ["Evaluator", "LoopStatus"]
