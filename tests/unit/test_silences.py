"""The acknowledgement silence bookkeeping: a sequence of transitions and outcomes in, the book's state out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stationmon.domain.alert_wire import rfc3339, silence_marker
from stationmon.domain.model import AlertEvent
from stationmon.domain.silences import SilenceBook

T0 = 1_700_000_000.0
LABELS = {"alertname": "supply_low", "station": "s1"}
FIRING = AlertEvent(
    alert_id="a1",
    rule="supply_low",
    station="s1",
    district="d",
    loop="sec1",
    severity="warning",
    state="firing",
    ts=T0,
    since=T0,
)
ACKED = replace(FIRING, state="acknowledged", acknowledged_by="wang", comment="on it")
RESOLVED = replace(FIRING, state="resolved")
ESCALATED = replace(FIRING, state="escalated", severity="major")


def _run(steps: list[tuple[str, object]]) -> SilenceBook:
    """Apply `steps`: ("event", event), ("created", id | None), ("found", [ids]), ("expired", id), ("restored", _)."""
    book = SilenceBook(duration_s=3600)
    for op, arg in steps:
        if op == "event":
            assert isinstance(arg, AlertEvent)
            book.apply(arg, LABELS, T0)
        elif op == "created":
            book.created("a1", arg)  # type: ignore[arg-type]
        elif op == "found":
            book.found("a1", arg)  # type: ignore[arg-type]
        elif op == "expired":
            book.expired(str(arg))
        else:
            book.restored("a1")
    return book


@pytest.mark.parametrize(
    ("steps", "ids", "create", "expire", "find"),
    [
        ([("event", FIRING)], {}, False, set(), set()),
        ([("event", ACKED)], {}, True, set(), set()),
        ([("event", ACKED), ("created", "s-1")], {"a1": "s-1"}, False, set(), set()),
        # refused for good (or no id in the reply): nothing to expire later
        ([("event", ACKED), ("created", None), ("event", RESOLVED)], {}, False, set(), set()),
        # resolved or escalated: the silence is expired, so the escalation goes out
        (
            [("event", ACKED), ("created", "s-1"), ("event", RESOLVED)],
            {},
            False,
            {"s-1"},
            set(),
        ),
        (
            [("event", ACKED), ("created", "s-1"), ("event", ESCALATED)],
            {},
            False,
            {"s-1"},
            set(),
        ),
        (
            [("event", ACKED), ("created", "s-1"), ("event", RESOLVED), ("expired", "s-1")],
            {},
            False,
            set(),
            set(),
        ),
        # acknowledged again: the old silence goes, a new one (with the new comment) is created
        ([("event", ACKED), ("created", "s-1"), ("event", ACKED)], {}, True, {"s-1"}, set()),
        # resolved before the silence was created: it never is
        ([("event", ACKED), ("event", RESOLVED)], {}, False, set(), set()),
        # acknowledged by a previous run: looked up by marker when it ends, then expired
        ([("restored", None), ("event", FIRING)], {}, False, set(), set()),
        ([("restored", None), ("event", RESOLVED)], {}, False, set(), {"a1"}),
        (
            [("restored", None), ("event", RESOLVED), ("found", ["s-0", "s-9"])],
            {},
            False,
            {"s-0", "s-9"},
            set(),
        ),
        # the first end consumed the lookup: a later resolution does not look again
        (
            [("restored", None), ("event", ESCALATED), ("found", []), ("event", FIRING), ("event", RESOLVED)],
            {},
            False,
            set(),
            set(),
        ),
    ],
)
def test_transitions(
    steps: list[tuple[str, object]], ids: dict[str, str], create: bool, expire: set[str], find: set[str]
) -> None:
    book = _run(steps)
    assert (book.ids, "a1" in book.to_create, book.to_expire, book.to_find) == (ids, create, expire, find)
    assert book.has_work == bool(create or expire or find)
    assert book.pending == int(create) + len(expire)


def test_the_silence_matches_the_labels_and_names_its_alert() -> None:
    book = _run([("event", ACKED)])
    body = book.to_create["a1"]
    assert body["matchers"] == [
        {"name": "alertname", "value": "supply_low", "isRegex": False, "isEqual": True},
        {"name": "station", "value": "s1", "isRegex": False, "isEqual": True},
    ]
    assert (body["startsAt"], body["endsAt"]) == (rfc3339(T0), rfc3339(T0 + 3600))
    assert (body["createdBy"], body["comment"]) == ("wang", f"on it {silence_marker('a1')}")
    anonymous = _run([("event", replace(ACKED, acknowledged_by=None, comment=None))]).to_create["a1"]
    assert (anonymous["createdBy"], anonymous["comment"]) == (
        "stationmon",
        "acknowledged in stationmon [stationmon alert a1]",
    )
