"""API keys ``gmx_<id>_<secret>``: the id finds the row; sha256(secret) is stored and compared safely."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from threading import Lock

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.db.orm import ApiKey

PREFIX = "gmx"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``api_keys.last_used_at`` is kept to this precision (fewer writes on busy keys)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: everything they create belongs to ``owner``."""

    owner: str
    key_id: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, *, name: str, owner: str | None = None) -> str:
    """Store a new key for ``owner`` (default: ``name``) and return it; it is never shown again."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(id=key_id, name=name, owner=owner or name, secret_sha256=_hash(secret)))
    session.commit()
    return f"{PREFIX}_{key_id}_{secret}"


def parse_key(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a bearer token belongs to, or None for a malformed, unknown, revoked or wrong key."""
    parsed = parse_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).one_or_none()
    expected = row.secret_sha256 if row is not None else _hash("")
    matches = hmac.compare_digest(_hash(secret), expected)
    if row is None or not matches or row.revoked_at is not None:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is None or (now - (last if last.tzinfo else last.replace(tzinfo=now.tzinfo))) > LAST_USED_RESOLUTION:
        row.last_used_at = now  # written at most once a minute per key (and only on a key-cache miss)
        session.commit()
    return Principal(owner=row.owner, key_id=row.id)


def revoke_api_key(session: Session, *, key_id: str) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.commit()
    return True


class KeyCache:
    """Short-lived cache of successful authentications, so hot endpoints skip a database round trip.

    Entries expire after ``ttl`` seconds: a revoked key stops working within that time. Tokens are
    kept only as their sha256.
    """

    def __init__(self, ttl: float, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = Lock()

    def get(self, token: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        entry = self._entries.get(_hash(token))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[_hash(token)] = (time.monotonic() + self.ttl, principal)
