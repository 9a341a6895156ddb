"""What the demo workspaces say: widget settings, a small knowledge base and their sample websites."""
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import KnowledgeEntry
from asthron.services import widget_settings

# Per demo workspace (by name): widget settings, knowledge entries (title, body) and sample-site copy.
CONTENT = {
    "Bluebell Dental": {
        "settings": {
            "colour": "#0f766e", "position": "right", "assistant_name": "Bluebell assistant",
            "greeting": "Hello! Ask me about appointments, prices or how to find us.",
            "consent_required": True, "notice_version": "2024-1", "privacy_url": "https://example.com/privacy",
            "consent_notice": "This chat is answered by an automated assistant. We keep the conversation "
                              "to answer you and may contact you if you ask us to.",
        },
        "knowledge": [
            ("Opening hours", "Our opening hours: Monday to Friday 8:00 to 18:00, Saturday 9:00 to 13:00. "
                              "We are closed on Sundays and bank holidays."),
            ("Prices", "Prices: a check-up costs £45, a scale and polish £60, a white filling from £120 and "
                       "teeth whitening £295. Children under 18 are seen free for check-ups."),
            ("Address and parking", "Our address: 14 Bluebell Lane, Bristol BS1 4QA. Free parking behind the "
                                    "practice; bus 72 stops outside."),
        ],
        "site": {"tagline": "Gentle, modern dentistry in the heart of Bristol.",
                 "services": ["Check-ups and hygiene", "White fillings", "Teeth whitening", "Emergency appointments"],
                 "address": "14 Bluebell Lane, Bristol BS1 4QA", "phone": "0117 496 0123"},
    },
    "Harbour Yoga": {
        "settings": {
            "colour": "#7c3aed", "position": "left", "assistant_name": "Harbour Yoga",
            "greeting": "Namaste! Ask me about classes, prices or the studio.",
        },
        "knowledge": [
            ("Opening hours and class times", "Studio opening hours: Monday to Friday 7:00 to 21:00, weekends "
                                              "9:00 to 14:00. Vinyasa daily at 7:30 and 18:30."),
            ("Prices and passes", "Prices: a drop-in class is 18 EUR, a 10-class pass 150 EUR and unlimited "
                                  "monthly membership 95 EUR. Your first class is free."),
            ("Address", "Our address: Hafenstrasse 21, 20359 Hamburg, second floor, next to the ferry pier."),
        ],
        "site": {"tagline": "Yoga by the water for every body.",
                 "services": ["Vinyasa flow", "Yin yoga", "Beginners' course", "Private sessions"],
                 "address": "Hafenstrasse 21, 20359 Hamburg", "phone": "+49 40 555 0199"},
    },
    "Copperleaf Law": {
        "settings": {
            "colour": "#b45309", "position": "right", "assistant_name": "Copperleaf intake",
            "greeting": "Welcome to Copperleaf Law. How can we help you today?",
        },
        "knowledge": [
            ("Office opening hours", "Office opening hours: Monday to Friday 9:00 to 17:30 Eastern time. "
                                     "Evening consultations on Thursdays until 20:00 by appointment."),
            ("Consultation prices and fees", "Prices: the first 30-minute consultation is free. After that our "
                                             "fees are $250 per hour; wills start at a fixed fee of $900."),
            ("Office address", "Our address: 480 Copper Street, Suite 12, Brooklyn, NY 11201, near Borough "
                               "Hall station."),
        ],
        "site": {"tagline": "Plain-spoken legal help for families and small businesses.",
                 "services": ["Wills and estates", "Small business contracts", "Property", "Family law"],
                 "address": "480 Copper Street, Suite 12, Brooklyn, NY 11201", "phone": "(718) 555-0142"},
    },
}


def seed_workspace(workspace):
    """Give a demo workspace its widget settings and knowledge entries (idempotent, refreshes the text)."""
    content = CONTENT.get(workspace.name)
    if content is None:
        return
    settings = widget_settings.ensure(workspace.id)
    for name, value in content["settings"].items():
        setattr(settings, name, value)
    existing = {e.title: e for e in db.session.scalars(
        select(KnowledgeEntry).where(KnowledgeEntry.workspace_id == workspace.id))}
    for title, body in content["knowledge"]:
        entry = existing.get(title)
        if entry is None:
            db.session.add(KnowledgeEntry(workspace_id=workspace.id, kind="faq", title=title, body=body))
        elif entry.body != body:
            entry.body = body
    db.session.flush()


def site(workspace_name):
    """Return the sample website copy of a demo workspace, or None."""
    content = CONTENT.get(workspace_name)
    return content["site"] if content else None
