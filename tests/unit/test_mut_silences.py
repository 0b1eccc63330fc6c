"""Acknowledgement silences at their edges: which listed silences are stationmon's, which one acknowledges
an alert, when an expired one ends an acknowledgement, the firing starts a restarted replica takes over,
and the silence book's races with Alertmanager.

Each test names the one-line bug it would catch (mutation testing, issue 17). Silences and alerts are
written out as Alertmanager's API lists them (`GET /api/v2/silences`, `GET /api/v2/alerts`).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from stationmon.domain.alert_wire import rfc3339
from stationmon.domain.alerts import AlertBook, Condition
from stationmon.domain.model import AlertEvent
from stationmon.domain.settings import RulesSettings
from stationmon.domain.silences import (
    AckSilence,
    SilenceBook,
    adopt_acknowledgements,
    match_acknowledgements,
    parse_ack_silences,
    parse_firing_starts,
)

T0 = 1_700_000_000.0
LABELS = {"alertname": "supply_low", "district": "d", "loop": "sec1", "severity": "warning", "station": "s1"}


def listed(
    labels: dict[str, str] = LABELS,
    *,
    starts: float = T0,
    state: str = "active",
    sid: str = "x1",
    comment: str = "crew sent [stationmon alert a1]",
    **changes: object,
) -> dict[str, object]:
    """A silence as Alertmanager lists it."""
    item: dict[str, object] = {
        "id": sid,
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in labels.items()],
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(starts + 7 * 86400),
        "createdBy": "wang",
        "comment": comment,
        "status": {"state": state},
        "updatedAt": rfc3339(starts),
    }
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


# ----------------------------------------------------------------------------------------------------
# parse_ack_silences


def test_a_listed_silence_is_read_whole() -> None:
    """Its id (the one to DELETE), creator, times, labels and the comment before the marker."""
    assert parse_ack_silences([listed(sid="8a1f-22")]) == [
        AckSilence(
            silence_id="8a1f-22",
            labels=LABELS,
            by="wang",
            starts=T0,
            ends=T0 + 7 * 86400,
            comment="crew sent",
            active=True,
        )
    ]


@pytest.mark.parametrize(
    "item",
    [
        listed(id=None),  # no id: it could never be expired, so it is not adopted
        listed(id=""),
        listed(startsAt=None),  # `and` for `or`: a silence without a start
        listed(endsAt=None),  # ... or without an end
        listed(endsAt="soon"),
        listed(matchers=None),  # ... or without matchers
        listed(matchers={"alertname": "supply_low"}),
        listed(comment="maintenance window"),  # no marker: someone else's silence
        listed(comment=None),
        listed(matchers=[{"name": "station", "value": "s.*", "isRegex": True, "isEqual": True}]),
        listed(matchers=[{"name": "station", "value": "s1", "isRegex": False, "isEqual": False}]),  # station!="s1"
        listed(matchers=["station=s1"]),
        "junk",
    ],
)
def test_silences_that_are_not_stationmon_acknowledgements_are_skipped(item: object) -> None:
    assert parse_ack_silences([item, listed(sid="ours")]) == parse_ack_silences([listed(sid="ours")])
    assert [s.silence_id for s in parse_ack_silences([item, listed(sid="ours")])] == ["ours"]


def test_a_matcher_without_is_equal_is_an_equality_matcher() -> None:
    """Alertmanager before 0.22 lists matchers without `isEqual`: they match equal values, so such a
    silence of ours is still ours (a default of False or None, or a misspelt key, would drop it)."""
    old = listed(matchers=[{"name": k, "value": v, "isRegex": False} for k, v in LABELS.items()])
    [silence] = parse_ack_silences([old])
    assert silence.labels == LABELS


def test_the_comment_is_the_text_before_the_first_marker() -> None:
    """A comment that only carries the marker (head 0, not "none found") is ours with an empty comment;
    text that quotes a second marker stays after the first (find, not rfind)."""
    [bare, quoted] = parse_ack_silences(
        [
            listed(comment="[stationmon alert a1]"),
            listed(comment="again [stationmon alert a1] was [stationmon alert a0]", sid="x2"),
        ]
    )
    assert (bare.comment, quoted.comment) == ("", "again")


@pytest.mark.parametrize(
    ("status", "active"),
    [
        ({"state": "active"}, True),
        ({"state": "expired"}, False),
        ({"state": "pending"}, False),  # not started yet
        (None, False),  # no status at all: not known to be active (and no AttributeError)
        ("active", False),
    ],
)
def test_only_a_silence_listed_as_active_is_active(status: object, active: bool) -> None:
    [silence] = parse_ack_silences([listed(status=status)])
    assert silence.active is active


@pytest.mark.parametrize("doc", [None, {"error": "bad gateway"}, "[]", 3])
def test_a_reply_that_is_no_list_has_no_silences(doc: object) -> None:
    assert parse_ack_silences(doc) == []


# ----------------------------------------------------------------------------------------------------
# match_acknowledgements


def _parsed(*items: dict[str, object]) -> list[AckSilence]:
    return parse_ack_silences(list(items))


def test_of_several_active_silences_the_earliest_acknowledges() -> None:
    """The first acknowledgement counts, in whatever order Alertmanager lists them (a `kept = None`
    would take the last listed)."""
    early, late = listed(starts=T0, sid="early"), listed(starts=T0 + 60, sid="late")
    for order in ((early, late), (late, early)):
        acknowledged, ended = match_acknowledgements(_parsed(*order), {"a1": LABELS})
        assert (acknowledged["a1"].silence_id, ended) == ("early", {})


def test_of_silences_starting_together_the_first_listed_acknowledges() -> None:
    """Replicas read the same listing: each adopts the same silence (`<=` would take the last)."""
    acknowledged, _ = match_acknowledgements(_parsed(listed(sid="first"), listed(sid="second")), {"a1": LABELS})
    assert acknowledged["a1"].silence_id == "first"


def test_of_several_expired_silences_the_latest_start_counts() -> None:
    old, newer = listed(starts=T0, state="expired"), listed(starts=T0 + 600, state="expired", sid="x2")
    for order in ((old, newer), (newer, old)):
        assert match_acknowledgements(_parsed(*order), {"a1": LABELS}) == ({}, {"a1": T0 + 600})


def test_an_active_silence_wins_over_expired_ones() -> None:
    items = _parsed(listed(state="expired", starts=T0 + 900, sid="x0"), listed(sid="x1"))
    acknowledged, ended = match_acknowledgements(items, {"a1": LABELS})
    assert (acknowledged["a1"].silence_id, ended) == ("x1", {})


def test_an_absent_label_is_the_empty_label_on_both_sides() -> None:
    """As in Alertmanager, a missing label equals an empty one: a silence and an alert both without
    `severity` match (a default other than "" on one side would keep them apart)."""
    labels = {k: v for k, v in LABELS.items() if k != "severity"}
    acknowledged, _ = match_acknowledgements(_parsed(listed(labels)), {"a1": labels})
    assert list(acknowledged) == ["a1"]
    assert match_acknowledgements(_parsed(listed(labels)), {"a1": LABELS}) == ({}, {})


# ----------------------------------------------------------------------------------------------------
# adopt_acknowledgements


def _firing_book() -> tuple[AlertBook, list[str]]:
    book = AlertBook(RulesSettings(for_s=0.0, clear_for_s=0.0))
    conditions = {
        ("supply_low", "s1", "sec1"): Condition(30.0, 40.0, "low", "d"),
        ("supply_low", "s2", "sec1"): Condition(30.0, 40.0, "low", "d"),
    }
    return book, [e.alert_id for e in book.update(T0, conditions)]


def _ack(*, by: str = "wang", starts: float = T0 + 5, comment: str = "crew sent") -> AckSilence:
    return AckSilence("x1", LABELS, by, starts, starts + 3600, comment, True)


def test_adopting_counts_each_alert_and_marks_the_book_to_save() -> None:
    book, ids = _firing_book()
    book.dirty = False
    assert adopt_acknowledgements(book, {ids[0]: _ack(), ids[1]: _ack()}, {}) == 2  # `= 1` would say 1
    assert book.dirty is True  # the evaluator saves the adopted acknowledgements
    book.dirty = False
    assert adopt_acknowledgements(book, {}, {ids[0]: T0 + 5, ids[1]: T0 + 5}) == 2
    assert book.dirty is True
    book.dirty = False
    assert adopt_acknowledgements(book, {}, {}) == 0
    assert book.dirty is False


@pytest.mark.parametrize(("by", "shown"), [("", "alertmanager"), ("zhang", "zhang")])
def test_a_silence_without_a_creator_is_acknowledged_by_alertmanager(by: str, shown: str) -> None:
    book, ids = _firing_book()
    adopt_acknowledgements(book, {ids[0]: _ack(by=by, comment="")}, {})
    snap = book.snapshot(ids[0])
    assert snap is not None and (snap.acknowledged_by, snap.acknowledged_at, snap.comment) == (shown, T0 + 5, None)


def test_a_silence_listed_without_created_by_is_adopted_as_alertmanager_s() -> None:
    """createdBy missing: "" (not "None" or "XXXX"), so the acknowledgement says "alertmanager"."""
    book, ids = _firing_book()
    acknowledged, ended = match_acknowledgements(_parsed(listed(createdBy=None)), {ids[0]: LABELS})
    assert adopt_acknowledgements(book, acknowledged, ended) == 1
    assert book.snapshot(ids[0]).acknowledged_by == "alertmanager"  # type: ignore[union-attr]


def test_alerts_resolved_meanwhile_are_left_alone() -> None:
    """An alert id the book no longer has (resolved since the listing): nothing to adopt, no error."""
    book, _ = _firing_book()
    assert adopt_acknowledgements(book, {"gone": _ack()}, {"gone": T0}) == 0


@pytest.mark.parametrize(
    ("silence_starts", "ends"),
    [
        (T0 + 100, True),
        (T0 + 99, True),  # one second of slack (clocks, millisecond rounding): `>` would keep it
        (T0 + 98.5, False),  # an earlier life's silence (a slack of 2 s would end it)
    ],
)
def test_an_expired_silence_ends_the_acknowledgement_it_started_with(silence_starts: float, ends: bool) -> None:
    book, ids = _firing_book()
    assert book.acknowledge(ids[0], "li", None, T0 + 100) is not None
    assert adopt_acknowledgements(book, {}, {ids[0]: silence_starts}) == int(ends)
    snap = book.snapshot(ids[0])
    assert snap is not None and (snap.acknowledged_by is None) is ends


# ----------------------------------------------------------------------------------------------------
# parse_firing_starts


def _am_alert(labels: dict[str, str], starts: float = T0, ends: float = T0 + 600) -> dict[str, object]:
    return {"labels": labels, "startsAt": rfc3339(starts), "endsAt": rfc3339(ends)}


KEY = ("supply_low", "s1", "sec1")


@pytest.mark.parametrize(
    "item",
    [
        "junk",  # `and` for `or` would read labels of a string
        {"startsAt": rfc3339(T0)},  # no labels
        {"labels": "alertname=supply_low"},
        _am_alert({**LABELS, "station": ""}),  # `and` for `or`: no station
        {**_am_alert(LABELS), "startsAt": None},
        _am_alert({**LABELS, "alertname": "Watchdog"}),  # someone else's alert, with a station label
        _am_alert(LABELS, ends=T0 + 100),  # ended exactly now: no longer firing (`<` would keep it)
    ],
)
def test_alerts_that_are_not_firing_stationmon_alerts_are_skipped(item: object) -> None:
    """Skipped, not the end of the list (`break` for `continue`): the alert listed after still counts."""
    now = T0 + 100
    assert parse_firing_starts([item, _am_alert({**LABELS, "station": "s2"})], now) == {
        ("supply_low", "s2", "sec1"): T0
    }


def test_the_earliest_start_of_an_alert_listed_twice_counts() -> None:
    """Listed earliest first or last (`out.get(None, ...)` would keep the last listed)."""
    early, late = _am_alert(LABELS, T0 - 50), _am_alert({**LABELS, "severity": "major"}, T0)
    assert parse_firing_starts([early, late], T0 + 100) == {KEY: T0 - 50}
    assert parse_firing_starts([late, early], T0 + 100) == {KEY: T0 - 50}


def test_an_alert_without_an_end_is_still_firing() -> None:
    assert parse_firing_starts([{"labels": LABELS, "startsAt": rfc3339(T0)}], T0 + 100) == {KEY: T0}


@pytest.mark.parametrize("doc", [None, {"alerts": []}, 7])
def test_an_alert_reply_that_is_no_list_has_no_alerts(doc: object) -> None:
    assert parse_firing_starts(doc, T0) == {}


# ----------------------------------------------------------------------------------------------------
# SilenceBook: adopted, and created racing with a resolution

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


def test_an_adopted_silence_is_expired_when_the_alert_resolves() -> None:
    book = SilenceBook()
    book.adopted("a1", "x1")
    assert book.ids == {"a1": "x1"}
    book.apply(RESOLVED, LABELS, T0)
    assert (book.ids, book.to_expire, book.to_find) == ({}, {"x1"}, set())


def test_adopting_after_a_restart_replaces_the_lookup_by_marker() -> None:
    """Acknowledged before the restart (silence id lost), then found by label set: the id is known, so
    resolving expires it directly instead of searching for it (the lookup is dropped)."""
    book = SilenceBook()
    book.restored("a1")
    book.adopted("a1", "x1")
    book.apply(RESOLVED, LABELS, T0)
    assert (book.to_expire, book.to_find) == ({"x1"}, set())


def test_an_adopted_silence_ends_the_lookup_for_good() -> None:
    """Restored, then adopted: the lookup by marker is no longer needed, also for a later end (an
    escalation expires the adopted silence; the resolution after it must not search again)."""
    book = SilenceBook()
    book.restored("a1")
    book.adopted("a1", "x1")
    book.apply(replace(FIRING, state="escalated", severity="major"), LABELS, T0)
    book.apply(RESOLVED, LABELS, T0 + 60)
    assert (book.to_expire, book.to_find) == ({"x1"}, set())


def test_adopting_never_replaces_our_own_silence() -> None:
    """Ours is known (or being created): another replica's silence for the same alert is its to expire."""
    book = SilenceBook()
    book.apply(ACKED, LABELS, T0)
    book.adopted("a1", "x-other")
    assert book.ids == {} and "a1" in book.to_create
    book.created("a1", "x-ours")
    book.adopted("a1", "x-other")
    assert book.ids == {"a1": "x-ours"}


def test_a_silence_created_after_its_alert_resolved_is_expired_at_once() -> None:
    """The alert resolved while the POST was on its way: the new silence must not stay (it would silence
    the same alert's next firing for a week), and created() must not fail on the missing entry."""
    book = SilenceBook()
    book.apply(ACKED, LABELS, T0)
    book.apply(RESOLVED, LABELS, T0 + 1)  # while the silence is being created
    book.created("a1", "x1")
    assert (book.ids, book.to_create, book.to_expire) == ({}, {}, {"x1"})
    book.created("a2", None)  # refused, never waited for: nothing to do
    assert (book.ids, book.to_expire) == ({}, {"x1"})
