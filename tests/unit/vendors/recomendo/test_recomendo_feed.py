"""The pure pieces of the Recomendo feed: leads -> events, the partition choice, the 30-minute guard,
quota arithmetic."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.sandbox.recomendo import validate_event
from vendorflow.ledger import Ledger
from vendorflow.vendors.recomendo.datasets import quota_status
from vendorflow.vendors.recomendo.events import event_time, lead_events, leads_dts
from vendorflow.vendors.recomendo.training import TrainingGuard

LEAD = {
    "lead_id": "5b73fhfc4f58363318b82443",
    "client_id": "5cs37a5083e3aa47a4a6a03e",
    "offer_id": "5cf92a83bc790a5cf99e35cf",
    "created_at": datetime(2024, 3, 1, 9, 30, 5, 123456, tzinfo=timezone.utc),
    "updated_at": None,
    "location_id": "loc1",
    "channel_id": "2f3e2b658720346d675b441c",
    "status": "new",
}


def test_a_lead_becomes_a_set_on_the_customer_and_an_interaction_with_the_offer() -> None:
    set_user, interaction = lead_events(LEAD, account="acct")
    assert set_user.key == "acct:5b73fhfc4f58363318b82443:$set"
    assert set_user.event == {
        "event": "$set",
        "entityType": "user",
        "entityId": "5cs37a5083e3aa47a4a6a03e",
        "eventTime": "2024-03-01T09:30:05.123Z",
        "properties": {"location_id": "loc1", "channel_id": "2f3e2b658720346d675b441c"},
    }
    assert interaction.event == {
        "event": "lead",
        "entityType": "user",
        "entityId": "5cs37a5083e3aa47a4a6a03e",
        "targetEntityType": "item",
        "targetEntityId": "5cf92a83bc790a5cf99e35cf",
        "eventTime": "2024-03-01T09:30:05.123Z",
        "properties": {"status": "new"},
    }
    assert interaction.key == "acct:5b73fhfc4f58363318b82443:lead@new"
    assert validate_event(set_user.event) is None and validate_event(interaction.event) is None  # PredictionIO's rules


def test_a_lead_in_a_new_status_is_a_new_interaction_and_the_same_set() -> None:
    converted = {**LEAD, "status": "customer", "status_changed_at": datetime(2024, 3, 6, 14, 0, tzinfo=timezone.utc)}
    before, after = lead_events(LEAD, account="acct"), lead_events(converted, account="acct")
    assert before[0].key == after[0].key and before[0].event == after[0].event  # the customer is set once
    assert after[1].key == "acct:5b73fhfc4f58363318b82443:lead@customer" != before[1].key
    assert after[1].event["properties"] == {"status": "customer"}
    assert after[1].event["eventTime"] == "2024-03-06T14:00:00.000Z"  # when the status changed
    assert validate_event(after[1].event) is None


def test_a_lead_without_the_ids_it_needs_is_skipped_with_a_reason() -> None:
    set_user, interaction = lead_events({**LEAD, "offer_id": None}, account="a")
    assert set_user.event is not None and interaction.event is None and interaction.problem == "lead has no offer_id"
    set_user, interaction = lead_events({**LEAD, "client_id": " "}, account="a")
    assert set_user.event is None and set_user.problem == "lead has no client_id" and interaction.event is None


def test_event_time_is_iso_8601_utc_with_milliseconds() -> None:
    assert event_time("2019-07-18T12:47:35.847Z") == "2019-07-18T12:47:35.847Z"
    assert event_time(datetime(2024, 3, 1, 12, 0)) == "2024-03-01T12:00:00.000Z"
    assert event_time("2024-03-01T14:00:00+02:00") == "2024-03-01T12:00:00.000Z"


def test_the_partition_comes_from_conf_then_asset_events_then_the_data_interval() -> None:
    leads = SimpleNamespace(name="footprints/leads")
    other = SimpleNamespace(name="recreativ/campaigns")
    events = {
        "a": [
            SimpleNamespace(asset=leads, extra={"dt": "2024-03-02"}),
            SimpleNamespace(asset=leads, extra={"dt": "2024-03-01"}),
        ],
        "b": [SimpleNamespace(asset=other, extra={"dt": "2024-01-01"})],
    }
    logical = {"data_interval_start": datetime(2024, 2, 1, tzinfo=timezone.utc)}
    assert leads_dts({**logical, "triggering_asset_events": events}, "2024-05-05") == [date(2024, 5, 5)]
    assert leads_dts({**logical, "triggering_asset_events": events}) == [date(2024, 3, 1), date(2024, 3, 2)]
    assert leads_dts(logical) == [date(2024, 2, 1)]
    # No data interval (asset-triggered, or REST without a logical date): the last complete day.
    assert leads_dts(
        {"logical_date": None, "dag_run": SimpleNamespace(run_after=datetime(2024, 4, 4, 1, tzinfo=timezone.utc))}
    ) == [date(2024, 4, 3)]
    # A run with a lookback announces every partition it published, not only its own day.
    lookback = {
        "a": [
            SimpleNamespace(
                asset=leads,
                extra={"dt": "2024-03-09", "partitions": [{"dt": "2024-03-04"}, {"dt": "2024-03-09"}]},
            )
        ]
    }
    assert leads_dts({"triggering_asset_events": lookback}) == [date(2024, 3, 4), date(2024, 3, 9)]
    with pytest.raises(Exception, match="dt must be a date"):
        leads_dts({}, "yesterday")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def guard(tmp_path: Path) -> TrainingGuard:
    return TrainingGuard(
        Ledger("recomendo_training", tmp_path / "ledger.sqlite"), "acct", interval=1800, margin=0, clock=Clock()
    )


def test_the_first_request_is_sent_at_once_and_recorded_before_the_call(guard: TrainingGuard) -> None:
    decision = guard.request("run-1")
    assert decision.action == "send"
    assert guard.ledger.get(f"training:{decision.training_id}").status == "sending"
    assert guard.last_call_at() == guard.clock()


def test_a_request_ten_minutes_after_a_training_is_postponed_to_the_thirty_minute_mark(guard: TrainingGuard) -> None:
    first = guard.request("run-1")
    guard.finish(first.training_id, "sent", "EXECUTE_TRAIN_SCHEDULED")
    start = guard.clock()
    guard.clock.now += 600
    later = guard.request("run-2")
    assert later.action == "wait" and later.due_at == start + 1800
    guard.clock.now = start + 1799
    assert guard.claim(later.training_id).action == "wait"
    guard.clock.now = start + 1800
    assert guard.claim(later.training_id).action == "send"
    assert guard.claim(later.training_id).action == "done"  # whoever comes next finds it made


def test_pending_requests_coalesce_into_one_call(guard: TrainingGuard) -> None:
    first = guard.request("run-1")
    guard.finish(first.training_id, "sent", "ok")
    waits = []
    for n in range(2, 7):
        guard.clock.now += 60
        waits.append(guard.request(f"run-{n}"))
    assert {w.action for w in waits} == {"wait"} and len({w.training_id for w in waits}) == 1
    guard.clock.now += 1800
    assert [guard.claim(w.training_id).action for w in waits] == ["send", "done", "done", "done", "done"]
    assert guard.ledger.get(f"training:{waits[0].training_id}").data["asks"] == 5


def test_a_retry_of_the_same_run_does_not_ask_twice(guard: TrainingGuard) -> None:
    first = guard.request("run-1")
    guard.finish(first.training_id, "sent", "ok")
    assert guard.request("run-1").action == "done"


def test_a_failed_call_still_starts_the_window_and_its_retry_waits(guard: TrainingGuard) -> None:
    first = guard.request("run-1")
    guard.finish(first.training_id, "failed", "HTTP 503")
    guard.clock.now += 5
    again = guard.request("run-1", new_data=False)  # the retry asks again: the failed call may not have counted
    assert again.action == "wait" and again.due_at == guard.last_call_at() + 1800


def test_nothing_new_since_the_last_accepted_training_is_skipped(guard: TrainingGuard) -> None:
    first = guard.request("run-1")
    guard.finish(first.training_id, "sent", "ok")
    assert guard.covered_until() == guard.clock()
    guard.clock.now += 4000
    assert guard.request("run-2", new_data=False).action == "skip"


def test_a_refusal_by_the_vendor_postpones_the_training(guard: TrainingGuard) -> None:
    first = guard.request("run-1")
    decision = guard.refused(first.training_id, "HTTP 429")
    assert decision.action == "wait" and decision.training_id == first.training_id
    assert decision.due_at == guard.clock() + 1800


def test_the_window_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    clock = Clock()
    first = TrainingGuard(Ledger("recomendo_training", path), "acct", interval=1800, clock=clock)
    assert first.request("run-1").action == "send"
    clock.now += 100
    reborn = TrainingGuard(Ledger("recomendo_training", path), "acct", interval=1800, clock=clock)
    assert reborn.request("run-2").action == "wait"
    other_account = TrainingGuard(Ledger("recomendo_training", path), "other", interval=1800, clock=clock)
    assert other_account.request("run-2").action == "send"


def test_quota_share_is_remaining_over_the_month() -> None:
    usages = [
        {"date": "2018-09-01", "userQuota": 0, "remainingQuota": 100000},
        {"date": "2018-09-03", "userQuota": 177, "remainingQuota": 99823},
        {"date": "2018-09-02", "userQuota": 0, "remainingQuota": 100000},
    ]
    status = quota_status(usages, 0.1)
    assert status["remaining_quota"] == 99823 and status["monthly_quota"] == 100000 and not status["quota_warning"]
    low = quota_status([{"date": "2018-09-01", "userQuota": 95000, "remainingQuota": 5000}], 0.1)
    assert low["remaining_share"] == 0.05 and low["quota_warning"]
    assert quota_status([{"date": "2018-09-01", "userQuota": 0, "remainingQuota": 5000}], 0.1, monthly_quota=100000)[
        "quota_warning"
    ]


def test_a_rendered_list_of_partitions_is_read_back() -> None:
    assert leads_dts({}, "['2024-03-02', '2024-03-01']") == [date(2024, 3, 1), date(2024, 3, 2)]
    assert leads_dts({"data_interval_start": datetime(2024, 2, 1, tzinfo=timezone.utc)}, "None") == [date(2024, 2, 1)]


OK_EVENT = {"event": "view", "entityType": "user", "entityId": "u1", "targetEntityType": "item", "targetEntityId": "i1"}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"event": "$set"}, "Reserved event $set cannot have targetEntity"),
        (
            {"event": "$bogus", "targetEntityType": None, "targetEntityId": None},
            "$bogus is not a supported reserved event name.",
        ),
        ({"event": "pio_x"}, "pio_x is not a supported reserved event name."),
        ({"targetEntityId": None}, "targetEntityType and targetEntityId must be specified together."),
        ({"targetEntityType": None}, "targetEntityType and targetEntityId must be specified together."),
        ({"entityType": "pio_user"}, "The entityType pio_user is not allowed. 'pio_' is a reserved name prefix."),
        ({"entityId": ""}, "entityId must not be empty string."),
        ({"entityId": 7}, "field entityId must be a string"),
        ({"properties": {"$x": 1}}, "The property $x is not allowed. 'pio_' is a reserved name prefix."),
        ({"eventTime": "2024-03-01 10:00"}, "Cannot convert 2024-03-01 10:00 to DateTime: not ISO 8601"),
    ],
)
def test_the_sandbox_refuses_what_predictionio_refuses(change: dict, message: str) -> None:
    event = {k: v for k, v in {**OK_EVENT, **change}.items() if v is not None}
    assert validate_event(event) == message


@pytest.mark.parametrize(
    "when",
    ["2018-09-24T19:00:00+0000", "2004-12-13T21:39:45.618-07:00", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00Z"],
)
def test_the_sandbox_accepts_the_iso_8601_forms_clients_send(when: str) -> None:
    assert validate_event({**OK_EVENT, "eventTime": when}) is None
    assert (
        validate_event({"event": "$unset", "entityType": "user", "entityId": "1"})
        == "properties cannot be empty for $unset event"
    )


def test_the_token_lifetime_is_read_from_the_jwt_exp_claim() -> None:
    from include.sandbox.recomendo import make_jwt
    from vendorflow.http.auth import jwt_claims
    from vendorflow.vendors.recomendo.hook import DEFAULT_TOKEN_LIFETIME, token_lifetime

    token = make_jwt("client", 1_000.0, 3600)
    assert jwt_claims(token)["clientId"] == "client"
    assert token_lifetime(token, now=1_100.0) == 3500.0
    assert token_lifetime(token, now=9_999.0) == 0.0
    assert token_lifetime("not-a-jwt") == DEFAULT_TOKEN_LIFETIME  # the documented hour


def test_two_runs_fed_the_same_leads_never_send_the_same_event(tmp_path: Path) -> None:
    from vendorflow.vendors.recomendo.events import claim_events

    ledger = Ledger("recomendo_events", tmp_path / "ledger.sqlite")
    planned = [p for n in range(5) for p in lead_events({**LEAD, "lead_id": f"l{n}"}, account="a")]
    first = claim_events(ledger, planned, "run-1", now=1000.0)
    assert len(first) == 10
    assert claim_events(ledger, planned, "run-2", now=1001.0) == []  # all claimed by run-1, which is alive
    assert (
        len(claim_events(ledger, planned, "run-1", now=1002.0)) == 10
    )  # run-1's retry resends its own unconfirmed ones
    ledger.put(first[0].key, "accepted", {"event_id": "e1"})
    taken_over = claim_events(ledger, planned, "run-3", now=1002.0 + 901)  # run-1 died: its claims expire
    assert [p.key for p in taken_over] == [p.key for p in first[1:]]


def test_a_failing_run_releases_its_claims_at_once(tmp_path: Path) -> None:
    from vendorflow.vendors.recomendo.events import claim_events, release_events

    ledger = Ledger("recomendo_events", tmp_path / "ledger.sqlite")
    planned = lead_events(LEAD, account="a")
    claim_events(ledger, planned, "run-1", now=1000.0)
    ledger.put(planned[0].key, "accepted", {"event_id": "e1"})
    assert release_events(ledger, planned, "run-1") == 1
    assert claim_events(ledger, planned, "rerun", now=1001.0) == [planned[1]]
