"""Bookings: created once (idempotent), never double (the database refuses it, also under 30 concurrent
requests), cancelled and moved, with signed links, emails with an ICS file, reminders, events, audit, leads."""
import threading
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from asthron import tenancy
from asthron.extensions import db
from asthron.hookspecs import hookimpl
from asthron.models.audit import AuditEntry
from asthron.models.booking import Booking, BookingStatus
from asthron.models.jobs import OutboxEntry
from asthron.models.leads import ActivityKind, Lead, LeadActivity
from asthron.models.notifications import Notification, OutboxEmail
from asthron.services import booking as service
from asthron.services import booking_emails
from tests.booking_helpers import make_resource, make_service


def day_after_tomorrow(hour, minute=0):
    day = datetime.now(UTC).date() + timedelta(days=2)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def shop(ctx):
    """A workspace with one service ("Consultation", 60 min) delivered by one person working 09-17 UTC daily."""
    from asthron.services import tenancy as svc

    agency = svc.create_agency("Agency")
    workspace = svc.create_workspace(agency=agency, name="Clinic", origins=["https://clinic.example"])
    db.session.flush()
    ada = make_resource(workspace.id, name="Ada")
    consultation = make_service(workspace.id, [ada])
    db.session.commit()
    return {"workspace": workspace.id, "service": consultation.id, "ada": ada.id}


def book(shop, start=None, *, key=None, email="visitor@example.com", name="Vera Visitor", **kw):
    booking, created = service.create(shop["workspace"], service_id=shop["service"],
                                      start=start or day_after_tomorrow(10), name=name, email=email,
                                      visitor_time_zone=kw.pop("tz", "Europe/Berlin"), idempotency_key=key, **kw)
    db.session.commit()
    return booking, created


def test_a_booking_holds_the_slot_with_its_times_in_utc(shop):
    booking, created = book(shop, day_after_tomorrow(10).astimezone(datetime.now().astimezone().tzinfo))
    assert created and booking.status == BookingStatus.confirmed
    db.session.expire_all()
    stored = db.session.get(Booking, booking.id)
    assert stored.start_at.replace(tzinfo=UTC) == day_after_tomorrow(10)
    assert stored.end_at.replace(tzinfo=UTC) == day_after_tomorrow(11)


def test_the_same_idempotency_key_and_body_return_the_first_booking(shop):
    first, created = book(shop, key="k-1")
    again, created_again = book(shop, key="k-1")
    assert created and not created_again and again.id == first.id
    assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_the_same_key_with_another_body_is_refused(shop):
    book(shop, key="k-2")
    with pytest.raises(service.IdempotencyMismatch):
        book(shop, day_after_tomorrow(12), key="k-2")
    db.session.rollback()
    assert db.session.scalar(select(func.count(Booking.id))) == 1


def test_a_taken_slot_is_refused_and_nothing_is_written(shop):
    book(shop)
    emails_before = db.session.scalar(select(func.count(Notification.id)))
    with pytest.raises(service.SlotTaken):
        book(shop, email="other@example.com")
    db.session.rollback()
    assert db.session.scalar(select(func.count(Booking.id))) == 1
    assert db.session.scalar(select(func.count(Notification.id))) == emails_before


@pytest.mark.parametrize("start", [day_after_tomorrow(10, 20), day_after_tomorrow(18), day_after_tomorrow(16, 30)])
def test_a_time_that_is_not_offered_is_refused(shop, start):
    with pytest.raises(service.SlotTaken):
        book(shop, start)


def test_bad_input_names_each_field(shop):
    with pytest.raises(service.BookingInvalid) as caught:
        service.create(shop["workspace"], service_id=shop["service"], start="tomorrow at ten", name=" ",
                       email="not-an-email", visitor_time_zone="Mars/Base")
    assert set(caught.value.errors) == {"start", "name", "email", "tz"}
    with pytest.raises(service.BookingInvalid) as caught:
        service.create(shop["workspace"], service_id=shop["service"], start="2030-01-01T10:00:00", name="V",
                       email="v@example.com")
    assert "offset" in caught.value.errors["start"]


def test_a_service_of_another_workspace_is_not_found(shop):
    from asthron.services import tenancy as svc

    other = svc.create_workspace(agency=svc.create_agency("Other"), name="Other", origins=[])
    db.session.commit()
    with pytest.raises(service.ServiceNotFound):
        service.create(other.id, service_id=shop["service"], start=day_after_tomorrow(10), name="V",
                       email="v@example.com")


def test_the_database_refuses_an_overlapping_booking_written_around_the_service(shop):
    booking, _ = book(shop)
    clash = Booking(workspace_id=shop["workspace"], service_id=shop["service"], resource_id=shop["ada"],
                    start_at=day_after_tomorrow(10, 30), end_at=day_after_tomorrow(11, 30),
                    blocked_start=day_after_tomorrow(10, 30), blocked_end=day_after_tomorrow(11, 30),
                    name="X", email="x@example.com")
    db.session.add(clash)
    with pytest.raises(IntegrityError) as caught:
        db.session.flush()
    assert service.is_overlap_error(caught.value)
    db.session.rollback()
    # A cancelled booking holds nothing, and moving one onto another is refused too.
    clash = Booking(workspace_id=shop["workspace"], service_id=shop["service"], resource_id=shop["ada"],
                    start_at=day_after_tomorrow(12), end_at=day_after_tomorrow(13), name="X", email="x@example.com",
                    blocked_start=day_after_tomorrow(12), blocked_end=day_after_tomorrow(13))
    db.session.add(clash)
    db.session.commit()
    clash.blocked_start, clash.blocked_end = day_after_tomorrow(10, 59), day_after_tomorrow(12)
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    db.session.get(Booking, booking.id).status = BookingStatus.cancelled
    db.session.commit()
    clash = db.session.get(Booking, clash.id)
    clash.blocked_start = day_after_tomorrow(10)
    db.session.commit()


def test_thirty_concurrent_requests_for_one_slot_make_one_booking(app, shop):
    barrier, results = threading.Barrier(30), []
    scope = tenancy.Scope(agency_ids=None, workspace_ids=frozenset({shop["workspace"]}),
                          data_workspace_ids=frozenset({shop["workspace"]}))

    def attempt(n):
        with app.app_context(), tenancy.scoped(scope):
            barrier.wait()
            try:
                service.create(shop["workspace"], service_id=shop["service"], start=day_after_tomorrow(14),
                               name=f"Visitor {n}", email=f"v{n}@example.com")
                db.session.commit()
                results.append("booked")
            except service.SlotTaken:
                db.session.rollback()
                results.append("taken")
            except Exception as exc:  # reported below: anything but the two answers is a failure
                db.session.rollback()
                results.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["booked"] + ["taken"] * 29, results
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.confirmed)) == 1


def test_with_two_people_the_second_request_gets_the_other_one(shop):
    bob = make_resource(shop["workspace"], name="Bob")
    consultation = db.session.get(service.availability.Service, shop["service"])
    consultation.resources.append(bob)
    db.session.commit()
    first, _ = book(shop)
    second, _ = book(shop, email="second@example.com")
    assert {first.resource_id, second.resource_id} == {shop["ada"], bob.id}
    with pytest.raises(service.SlotTaken):
        book(shop, email="third@example.com")


def test_cancelling_frees_the_slot_and_tells_the_visitor(shop):
    booking, _ = book(shop)
    service.cancel(booking, reason="Changed my mind")
    db.session.commit()
    again, created = book(shop, email="next@example.com")
    assert created and again.id != booking.id
    subjects = db.session.scalars(select(OutboxEmail.subject).order_by(OutboxEmail.id)).all()
    assert any(s.startswith("Booking cancelled: Consultation") for s in subjects)


def test_rescheduling_moves_the_booking_and_frees_the_old_time(shop):
    booking, _ = book(shop)
    service.reschedule(booking, start=day_after_tomorrow(15))
    db.session.commit()
    assert booking.start_at.replace(tzinfo=UTC) == day_after_tomorrow(15)
    other, created = book(shop, email="other@example.com")
    assert created
    with pytest.raises(service.SlotTaken):
        service.reschedule(booking, start=day_after_tomorrow(10))
    db.session.rollback()


def test_a_booking_can_move_by_less_than_its_own_length(shop):
    booking, _ = book(shop)
    service.reschedule(booking, start=day_after_tomorrow(11))  # overlaps its own old range
    db.session.commit()
    assert booking.start_at.replace(tzinfo=UTC) == day_after_tomorrow(11)


def test_the_confirmation_email_carries_the_booking_as_ics_and_a_manage_link(shop):
    booking, _ = book(shop)
    email = db.session.scalars(select(OutboxEmail).where(OutboxEmail.subject.like("Booking confirmed%"))).one()
    assert email.to == "visitor@example.com"
    assert [a["filename"] for a in email.attachments] == ["booking.ics"]
    assert "/booking/manage/" in email.text
    local = day_after_tomorrow(10).astimezone(service.availability.zone("Europe/Berlin"))
    assert local.strftime("%H:%M") in email.subject  # in the visitor's zone
    event = Calendar.from_ical(booking_emails.ics(booking)).walk("VEVENT")[0]
    assert event["UID"] == f"{booking.reference}@asthron"
    assert event.decoded("DTSTART") == day_after_tomorrow(10)
    assert event.decoded("DTEND") == day_after_tomorrow(11)


def test_reminders_are_scheduled_before_the_appointment(shop):
    booking, _ = book(shop)
    due = db.session.scalars(select(OutboxEntry).where(OutboxEntry.job == "notifications.booking_reminder")
                             .order_by(OutboxEntry.id)).all()
    assert [e.payload["minutes"] for e in due] == [60, 1440]
    times = sorted(e.available_at.replace(tzinfo=UTC) for e in due)
    assert times == [day_after_tomorrow(10) - timedelta(days=1), day_after_tomorrow(9)]


def test_a_reminder_is_sent_once_and_not_for_a_moved_or_cancelled_booking(shop):
    booking, _ = book(shop)
    starts = int(day_after_tomorrow(10).timestamp())
    assert service.send_reminder(booking.id, minutes=60, starts=starts) is True
    assert service.send_reminder(booking.id, minutes=60, starts=starts) is False
    assert service.send_reminder(booking.id, minutes=60, starts=starts + 3600) is False
    service.cancel(booking)
    assert service.send_reminder(booking.id, minutes=1440, starts=starts) is False
    db.session.commit()
    assert db.session.scalar(select(func.count(Notification.id)).where(
        Notification.template == "booking_reminder")) == 1


def test_signed_links_open_the_booking_until_it_starts(shop):
    booking, _ = book(shop)
    token = service.manage_token(booking)
    assert service.booking_for_token(token).id == booking.id
    with pytest.raises(service.LinkExpired):
        service.booking_for_token(token, now=day_after_tomorrow(10))
    with pytest.raises(service.LinkInvalid):
        service.booking_for_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    with pytest.raises(service.LinkInvalid):
        service.booking_for_token("")


def test_a_link_for_another_booking_cannot_be_forged_by_changing_the_id(app, shop):
    from itsdangerous import URLSafeSerializer

    booking, _ = book(shop)
    forged = URLSafeSerializer("not-the-secret", salt=service.LINK_SALT).dumps(
        {"b": booking.id, "r": booking.reference, "x": 2**40})
    with pytest.raises(service.LinkInvalid):
        service.booking_for_token(forged)


def test_each_change_is_audited_and_emitted_as_an_event(shop, register_plugin):
    seen = []

    class Listener:
        @hookimpl
        def track_event(self, event):
            seen.append(event.name)

    register_plugin(Listener(), "booking-listener")
    booking, _ = book(shop)
    service.reschedule(booking, start=day_after_tomorrow(12))
    db.session.commit()
    service.cancel(booking)
    db.session.commit()
    assert [n for n in seen if n.startswith("booking.")] == ["booking.created", "booking.rescheduled",
                                                              "booking.cancelled"]
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "Booking")
                                 .order_by(AuditEntry.id)).all()
    assert actions[0].endswith("create") and len(actions) >= 3


def test_the_booking_joins_the_timeline_of_a_new_or_existing_lead(shop):
    booking, _ = book(shop, email="Lead@Example.com")
    lead = db.session.scalars(select(Lead).where(Lead.email == "lead@example.com")).one()
    assert booking.lead_id == lead.id
    kinds = db.session.scalars(select(LeadActivity.kind).where(LeadActivity.lead_id == lead.id)).all()
    assert ActivityKind.booking in kinds
    second, _ = book(shop, day_after_tomorrow(13), email="lead@example.com")
    assert second.lead_id == lead.id
    assert db.session.scalar(select(func.count(Lead.id))) == 1


def test_the_calendar_sync_is_queued_with_each_change(shop):
    booking, _ = book(shop)
    service.cancel(booking)
    db.session.commit()
    pushes = db.session.scalar(select(func.count(OutboxEntry.id)).where(OutboxEntry.job == "calendar.push_booking"))
    assert pushes == 2



# --- The AI's tools: list_slots and book (which needs the visitor's answer before it books) ---------------

@pytest.fixture
def chat(shop):
    from asthron.models.tenancy import Workspace
    from asthron.services import conversations

    conversation, _token = conversations.start_conversation(db.session.get(Workspace, shop["workspace"]))
    conversations.add_message(conversation, "visitor", "Can I book a consultation?")
    db.session.commit()
    return conversation


def test_list_slots_names_the_services_then_their_free_times(shop, chat):
    from asthron.services import booking_tools

    listed = booking_tools.list_slots(chat, {})
    assert listed["services"][0]["id"] == shop["service"]
    first = day_after_tomorrow(0).date().isoformat()
    slots = booking_tools.list_slots(chat, {"service_id": shop["service"], "date": first, "days": 1,
                                            "time_zone": "Asia/Tokyo"})
    # The Tokyo day runs 15:00 UTC the day before to 15:00 UTC: the end of one UTC working day, most of the next.
    assert [s[11:] for s in slots["slots"]] == [f"{h:02d}:00:00+09:00" for h in (0, 1, 18, 19, 20, 21, 22, 23)]
    assert all(s.startswith(first) for s in slots["slots"])


def test_book_asks_for_confirmation_and_books_only_after_the_visitor_answers(shop, chat):
    from asthron.services import booking_tools, conversations

    args = {"service_id": shop["service"], "start": day_after_tomorrow(10).isoformat(), "name": "Ann",
            "email": "ann@example.com"}
    proposal = booking_tools.book(chat, dict(args))
    assert proposal["needs_confirmation"] and db.session.scalar(select(func.count(Booking.id))) == 0
    confirmed = {**args, "confirmation": proposal["confirmation"]}
    with pytest.raises(booking_tools.ToolArgumentError, match="not answered"):
        booking_tools.book(chat, dict(confirmed))
    with pytest.raises(booking_tools.ToolArgumentError, match="details changed"):
        booking_tools.book(chat, {**confirmed, "start": day_after_tomorrow(11).isoformat()})
    conversations.add_message(chat, "visitor", "Yes, please book it.")
    result = booking_tools.book(chat, dict(confirmed))
    again = booking_tools.book(chat, dict(confirmed))
    db.session.commit()
    assert result["booked"] and again["reference"] == result["reference"]
    stored = db.session.scalars(select(Booking)).one()
    assert stored.conversation_id == chat.id and stored.source == "ai"


def test_book_refuses_a_forged_code_and_a_taken_slot(shop, chat):
    from asthron.services import booking_tools

    args = {"service_id": shop["service"], "start": day_after_tomorrow(10).isoformat(), "name": "Ann",
            "email": "ann@example.com"}
    with pytest.raises(booking_tools.ToolArgumentError):
        booking_tools.book(chat, {**args, "confirmation": "made-up"})
    book(shop)
    assert booking_tools.book(chat, dict(args))["ok"] is False


# --- Demo data ---------------------------------------------------------------------------------------------

def test_the_demo_seeds_services_people_in_two_zones_bookings_and_free_slots(ctx):
    from asthron.models.booking import Resource, Service
    from asthron.models.chat import WidgetSettings
    from asthron.services import availability, demo

    demo.seed()
    demo.seed()  # idempotent
    for workspace_id in db.session.scalars(select(Service.workspace_id).distinct()):
        services = db.session.scalars(select(Service).where(Service.workspace_id == workspace_id)).all()
        zones = set(db.session.scalars(select(Resource.time_zone).where(Resource.workspace_id == workspace_id)))
        assert len(services) == 2 and len(zones) == 2
        assert db.session.scalar(select(func.count(Booking.id)).where(Booking.workspace_id == workspace_id)) >= 1
        settings = db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == workspace_id)).one()
        assert {"list_slots", "book"} <= set(settings.enabled_tools)
        from_day_after_tomorrow = day_after_tomorrow(0)
        for offered in services:
            found = availability.slots(offered, start=from_day_after_tomorrow,
                                       end=from_day_after_tomorrow + timedelta(days=7))
            assert found, f"{offered.name} has no free slot in the week from the day after tomorrow"
    assert db.session.scalar(select(func.count(func.distinct(Service.workspace_id)))) == 3


def test_reminders_wait_in_rqs_scheduler_and_a_worker_sends_them(app, shop, redis_url, monkeypatch):
    from redis import Redis
    from rq import Queue, SimpleWorker
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    from asthron.jobs import QUEUES

    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    conn = Redis.from_url(redis_url)
    booking, _ = book(shop)
    scheduled = ScheduledJobRegistry("notifications", connection=conn)
    assert scheduled.count == 2  # 24 hours and 1 hour before; not due yet
    # Time passes: move them to the queue as RQ's scheduler would when due, and run a real worker.
    for job_id in scheduled.get_job_ids():
        due = Job.fetch(job_id, connection=conn)
        Queue("notifications", connection=conn).enqueue_job(due)
        scheduled.remove(due)
    SimpleWorker(list(QUEUES), connection=conn).work(burst=True)
    db.session.expire_all()
    assert sorted(db.session.get(Booking, booking.id).reminders_sent) == sorted(
        f"{m}@{int(day_after_tomorrow(10).timestamp())}" for m in (60, 1440))
