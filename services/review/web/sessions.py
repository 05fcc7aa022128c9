"""Browser sessions of the review workstation: a signed-in user's cookie and its CSRF token.

Signing in exchanges a bearer token (or, at a hospital with an OIDC provider, the provider's
validated login: anything that yields a `Principal`) for a session. The browser holds only an
HttpOnly, SameSite=Strict cookie, so the token never appears in a URL or in script-readable storage;
only the cookie's SHA-256 is stored. Every change the page makes must echo the session's CSRF token
in a header, which another site's page cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.review.auth import Principal
from pathstream.shared.db.models import BrowserSession, User
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.events.base import utc_now

COOKIE_NAME = "pathstream_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class OpenedSession:
    """A new session: `cookie` goes to the browser once and is never stored."""

    cookie: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionUser:
    """The signed-in user behind a session cookie, and the CSRF token that session's page must send."""

    principal: Principal
    display_name: str
    csrf_token: str
    expires_at: datetime

    def csrf_matches(self, sent: str | None) -> bool:
        """True when `sent` (the request's CSRF header) is this session's token (constant time)."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def _sha256(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class BrowserSessions:
    """Sessions kept in PathStream's database, valid for `lifetime` (default 8 h, one shift)."""

    def __init__(self, sessions: sessionmaker[Session], lifetime: timedelta = timedelta(hours=8)) -> None:
        self.sessions = sessions
        self.lifetime = lifetime

    def open(self, principal: Principal) -> OpenedSession:
        """A new session for an authenticated `principal`."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = utc_now() + self.lifetime
        with self.sessions.begin() as session:
            session.add(
                BrowserSession(
                    session_sha256=_sha256(cookie),
                    user_id=principal.user_id,
                    csrf_token=csrf,
                    expires_at=expires,
                )
            )
        return OpenedSession(cookie, csrf, expires)

    def resolve(self, cookie: str) -> SessionUser | None:
        """The user of an open, unexpired session of an enabled user; None otherwise."""
        if not cookie or len(cookie) > 100:
            return None
        with self.sessions() as session:
            row = session.get(BrowserSession, _sha256(cookie))
            if row is None or row.closed_at is not None or stored_utc(row.expires_at) <= utc_now():
                return None
            user = session.get(User, row.user_id)
            if user is None or user.disabled_at is not None:
                return None
            return SessionUser(
                Principal(user.user_id, user.role),
                user.display_name,
                row.csrf_token,
                stored_utc(row.expires_at),
            )

    def close(self, cookie: str) -> None:
        """End a session (sign-out of the workstation); unknown cookies are ignored."""
        with self.sessions.begin() as session:
            session.execute(
                update(BrowserSession)
                .where(BrowserSession.session_sha256 == _sha256(cookie), BrowserSession.closed_at.is_(None))
                .values(closed_at=utc_now())
            )
