"""Users and bearer tokens of the review API: issue, revoke, authenticate.

A token is `pst_<token_id>_<secret>` (secret: 32 random bytes, URL-safe base64). Only its SHA-256 is
stored, so a copy of the database grants nobody access; the token is shown once when issued.
`token_id` is the public part an operator revokes by. Authentication looks the hash up and refuses
unknown, revoked, expired and disabled-user tokens alike, with one message (no oracle for which).

`Authenticator` is the seam for the hospital's identity provider: an OIDC implementation validates
the provider's JWT (issuer, audience, signature via JWKS) and maps a claim to a `User` row; the API
only ever sees the resulting `Principal`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pathstream.shared.db.models import ApiToken, Role, User
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events.base import utc_now
from pathstream.shared.naming import safe_id

TOKEN_PREFIX = "pst_"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who (recorded in the audit trail) and what they may do."""

    user_id: str
    role: Role

    @property
    def may_amend(self) -> bool:
        """True for pathologists: they may change labels and contours."""
        return self.role == Role.PATHOLOGIST

    @property
    def may_order(self) -> bool:
        """True for the laboratory's integration account and pathologists: they may post orders."""
        return self.role in (Role.PATHOLOGIST, Role.LABORATORY)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: `token` is shown once and never stored."""

    token_id: str
    user_id: str
    token: str
    expires_at: datetime | None


class Authenticator(Protocol):
    """Turns a bearer credential into a `Principal`, or None when it grants nothing."""

    def authenticate(self, bearer: str) -> Principal | None:
        """The principal `bearer` identifies, or None."""
        ...


def token_sha256(token: str) -> str:
    """Hex SHA-256 of a token as stored in `api_tokens.token_sha256`."""
    return hashlib.sha256(token.encode()).hexdigest()


class DatabaseTokens:
    """Users and tokens kept in PathStream's database (the default `Authenticator`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def add_user(self, user_id: str, role: Role, display_name: str = "") -> User:
        """Create a user; raises `PathStreamError(INVALID_CONFIGURATION)` if the id is taken or unusable."""
        try:
            clean = safe_id(user_id)
        except ValueError as exc:
            raise PathStreamError(ErrorCode.INVALID_CONFIGURATION, f"User id: {exc}.") from None
        if clean != user_id:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"User id {user_id!r} may hold only letters, digits, '.', '_' and '-'.",
                hint=f"Use e.g. {clean!r}.",
            )
        with self.sessions.begin() as session:
            if session.get(User, user_id) is not None:
                raise PathStreamError(ErrorCode.INVALID_CONFIGURATION, f"User {user_id} already exists.")
            user = User(user_id=user_id, role=role, display_name=display_name or user_id)
            session.add(user)
        return user

    def users(self) -> list[User]:
        """Every user, by id."""
        with self.sessions() as session:
            return list(session.scalars(select(User).order_by(User.user_id)))

    def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Withdraw (or restore) a user's access; their tokens stop working at once."""
        with self.sessions.begin() as session:
            user = self._user(session, user_id)
            user.disabled_at = utc_now() if disabled else None

    def issue(self, user_id: str, valid_days: int | None = 90) -> IssuedToken:
        """A new token for `user_id`, valid for `valid_days` days (None: until revoked)."""
        token_id = secrets.token_hex(8)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        expires = None if valid_days is None else utc_now() + timedelta(days=valid_days)
        with self.sessions.begin() as session:
            self._user(session, user_id)
            session.add(
                ApiToken(
                    token_id=token_id, user_id=user_id, token_sha256=token_sha256(token), expires_at=expires
                )
            )
        return IssuedToken(token_id, user_id, token, expires)

    def revoke(self, token_id: str) -> None:
        """Revoke a token by its id; raises `PathStreamError` when there is no such token."""
        with self.sessions.begin() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise PathStreamError(
                    ErrorCode.INVALID_CONFIGURATION,
                    f"There is no token {token_id}.",
                    hint="`pathstream users tokens` lists token ids.",
                )
            if row.revoked_at is None:
                row.revoked_at = utc_now()

    def tokens(self, user_id: str | None = None) -> list[ApiToken]:
        """Tokens (never their secrets), newest first; one user's when `user_id` is given."""
        query = select(ApiToken).order_by(ApiToken.created_at.desc())
        if user_id is not None:
            query = query.where(ApiToken.user_id == user_id)
        with self.sessions() as session:
            return list(session.scalars(query))

    def authenticate(self, bearer: str) -> Principal | None:
        """The principal of a valid, unrevoked, unexpired token of an enabled user; else None."""
        if not bearer.startswith(TOKEN_PREFIX) or len(bearer) > 200:
            return None
        now = utc_now()
        with self.sessions.begin() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_sha256(bearer)))
            if row is None or row.revoked_at is not None:
                return None
            expires = None if row.expires_at is None else stored_utc(row.expires_at)
            if expires is not None and expires <= now:
                return None
            user = session.get(User, row.user_id)
            if user is None or user.disabled_at is not None:
                return None
            session.execute(
                update(ApiToken).where(ApiToken.token_id == row.token_id).values(last_used_at=now)
            )
            return Principal(user.user_id, user.role)

    @staticmethod
    def _user(session: Session, user_id: str) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"There is no user {user_id}.",
                hint="Create it with `pathstream users add`.",
            )
        return user
