"""Server-side records of signed-in sessions, so that a session can be ended from the server."""
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String

from asthron.models.base import Model, utcnow


class UserSession(Model):
    """One signed-in browser session; the cookie carries a random id, the row only its SHA-256."""

    __tablename__ = "user_session"

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    revoked_at = Column(DateTime(timezone=True), nullable=True)
    revoke_reason = Column(String(32), nullable=True)
    ip = Column(String(64), nullable=True)
    user_agent = Column(String(256), nullable=True)

    def __repr__(self):
        return f"<UserSession {self.id} user={self.user_id}>"
