"""Accounts, their roles and API tokens, and the throttle on failed logins (one database for all machines)."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from webapp.errors import Conflict, InvalidInput, NotFound, TooManyAttempts, Unauthenticated
from webapp.services.database import ACCOUNT_NAMES, Database, login_failures, tokens, users
from webapp.services.roles import Role

EXPIRES_SOON = 14 * 86400  # a token this close to its expiry is pointed out (the Account page, commands)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
TOKEN_ID = re.compile(r"[0-9a-f]{8}")  # secrets.token_hex(4)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # dropped from a token's name (PostgreSQL's text takes no NUL)
MIN_PASSWORD, MAX_PASSWORD = 10, 1024  # OWASP: long passphrases allowed, no composition rules
TOKEN_PREFIX = "ris_"
MAX_TOKEN_DAYS = 3650  # a token may be made to expire after up to ten years (or never)
FAILURE_WINDOW = 15 * 60  # seconds during which failed logins count
MAX_FAILURES_PER_ACCOUNT = 10
MAX_FAILURES_PER_ADDRESS = 50
LAST_USE_PRECISION = 60  # seconds: a token used again within this does not write its last use again


@dataclass(frozen=True)
class User:
    """An account."""

    id: int
    name: str
    role: Role
    created_at: float
    session_epoch: int

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(row.id, row.name, Role(row.role), row.created_at, row.session_epoch)


@dataclass(frozen=True)
class Token:
    """An API token as lists show it (its secret is never stored, only its SHA-256)."""

    id: str
    owner: str
    name: str
    role: Role
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    expires_at: float | None = None  # None: never

    @property
    def active(self) -> bool:
        """Tell whether the token still opens anything (neither revoked nor expired)."""
        return self.revoked_at is None and not self.expired

    @property
    def expired(self) -> bool:
        """Tell whether the token's time is up."""
        return self.expires_at is not None and time.time() >= self.expires_at

    @property
    def expires_soon(self) -> bool:
        """Tell whether the token works, but not for more than EXPIRES_SOON seconds."""
        return self.active and self.expires_at is not None and self.expires_at - time.time() <= EXPIRES_SOON


class WrongPassword(InvalidInput):
    """A password change refused: the current password given is not the account's."""


def _digest(secret: str) -> str:
    # A token is 256 random bits, so a fast hash is enough (no dictionary to try against it).
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    """Accounts with argon2id password hashes, and bearer tokens acting for them."""

    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()  # argon2id, 64 MiB, 3 passes: OWASP's baseline

    @cached_property
    def _dummy_hash(self) -> str:
        """Return a hash to verify against for unknown names: they cost as much as known ones."""
        return self.hasher.hash(secrets.token_hex(16))

    # Accounts.

    def create_user(self, name: str, role: Role, password: str) -> User:
        """Create an account; refuse a taken name, an odd name or a short password."""
        check_name(name)
        check_password(password)
        password_hash = self.hasher.hash(password)  # (about 0.1 s: not while holding the database's lock)
        try:
            with self.db.connect() as conn:
                row = {"name": name, "role": role, "password_hash": password_hash, "created_at": time.time()}
                conn.execute(insert(users).values(**row))
        except IntegrityError as exc:  # the name's unique index decides, so two at once cannot both get it
            raise Conflict(f"an account named {name!r} exists already") from exc
        return self.user_named(name)

    def users(self) -> list[User]:
        """Return every account, by name."""
        with self.db.connect() as conn:
            return [User.from_row(r) for r in conn.execute(select(users).order_by(users.c.name))]

    def user_named(self, name: str) -> User:
        """Return the account called ``name``."""
        if not NAME.fullmatch(name):  # no account has such a name (nor could PostgreSQL compare a NUL)
            raise NotFound(f"no account named {name!r}")
        with self.db.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no account named {name!r}")
        return User.from_row(row)

    def user(self, user_id: int) -> User | None:
        """Return an account by id (None once deleted)."""
        with self.db.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return None if row is None else User.from_row(row)

    def rename(self, name: str, new: str) -> User:
        """Rename an account, and the images, jobs and trashed images naming it, in one transaction
        (the activity log keeps the names as they were); refuse a taken or odd name."""
        check_name(new)
        user = self.user_named(name)
        if new == name:
            raise InvalidInput(f"the account is called {name} already")
        try:
            with self.db.connect() as conn:
                conn.execute(update(users).where(users.c.id == user.id).values(name=new))
                for column in ACCOUNT_NAMES:
                    conn.execute(update(column.table).where(column == name).values({column.name: new}))
        except IntegrityError as exc:  # the name's unique index decides
            raise Conflict(f"an account named {new!r} exists already") from exc
        return self.user_named(new)

    def token_use(self) -> dict[str, float]:
        """Return when each account's tokens were last used (to LAST_USE_PRECISION), of those used."""
        query = (
            select(users.c.name, func.max(tokens.c.last_used_at))
            .join(tokens, tokens.c.user_id == users.c.id)
            .where(tokens.c.last_used_at.is_not(None))
            .group_by(users.c.name)
        )
        with self.db.connect() as conn:
            return {name: at for name, at in conn.execute(query)}

    def last_seen(self, activity: Mapping[str, float]) -> dict[str, float]:
        """Return when each account was last seen: the later of its ``activity`` (Activity.last_seen)
        and its tokens' last use."""
        seen = dict(activity)
        for name, at in self.token_use().items():
            seen[name] = max(at, seen.get(name, at))
        return seen

    def delete_user(self, name: str) -> None:
        """Delete an account; its tokens and sessions stop working at once."""
        user = self.user_named(name)
        with self.db.connect() as conn:
            conn.execute(delete(tokens).where(tokens.c.user_id == user.id))
            conn.execute(delete(users).where(users.c.id == user.id))

    def set_password(self, name: str, password: str) -> None:
        """Change an account's password; the sessions opened with the old one end."""
        check_password(password)
        user = self.user_named(name)
        with self.db.connect() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user.id)
                .values(password_hash=self.hasher.hash(password), session_epoch=users.c.session_epoch + 1)
            )

    def end_sessions(self, name: str) -> User:
        """End every session of an account (its tokens keep working); return it, for the session
        that asked to go on."""
        user = self.user_named(name)
        with self.db.connect() as conn:
            conn.execute(update(users).where(users.c.id == user.id).values(session_epoch=users.c.session_epoch + 1))
        return self.user_named(name)

    def change_password(self, name: str, current: str, new: str, address: str) -> User:
        """Change one's own password, given the current one (a wrong one counts as a failed sign-in,
        and too many are refused: TooManyAttempts); the sessions opened with the old one end.
        Return the account, for the session that changed it to go on."""
        check_password(new)
        if self.authenticate(name, current, address) is None:
            raise WrongPassword("the current password is not right; the password is unchanged")
        self.set_password(name, new)
        return self.user_named(name)

    def set_role(self, name: str, role: Role) -> User:
        """Give an account another role, at once for its sessions and its tokens. The last admin
        stays one (Conflict).

        A lower role lowers the account's tokens above it for good: promoting the account again
        gives its old tokens nothing back (a new token is made for that).
        """
        user = self.user_named(name)
        with self.db.connect() as conn:
            if user.role == Role.ADMIN and role != Role.ADMIN:
                # The admins' rows locked (PostgreSQL): two admins demoting each other take turns.
                admins = select(users.c.id).where(users.c.role == Role.ADMIN).with_for_update()
                if not [i for i in conn.scalars(admins) if i != user.id]:
                    raise Conflict(f"{name} is the last admin: make another account an admin first")
            conn.execute(update(users).where(users.c.id == user.id).values(role=role))
            above = [r for r in Role if r.rank > role.rank]
            conn.execute(update(tokens).where(tokens.c.user_id == user.id, tokens.c.role.in_(above)).values(role=role))
        return self.user_named(name)

    def has_admin(self) -> bool:
        """Tell whether any admin account exists."""
        with self.db.connect() as conn:
            return conn.execute(select(users.c.id).where(users.c.role == Role.ADMIN).limit(1)).first() is not None

    def authenticate(self, name: str, password: str, address: str) -> User | None:
        """Return the account if the password is right; count failures, and refuse after too many."""
        # A name no account can have shares one count (it may hold a NUL, which PostgreSQL refuses).
        possible = NAME.fullmatch(name) is not None
        user_key = f"user:{name}" if possible else "user:(not an account name)"
        keys = {user_key: MAX_FAILURES_PER_ACCOUNT, f"ip:{address[:100]}": MAX_FAILURES_PER_ADDRESS}
        now = time.time()
        with self.db.connect() as conn:
            for key, limit in keys.items():
                recent = select(func.count(), func.min(login_failures.c.at)).where(
                    login_failures.c.key == key, login_failures.c.at > now - FAILURE_WINDOW
                )
                count, oldest = conn.execute(recent).one()
                if count >= limit:
                    wait = max(1, int(oldest + FAILURE_WINDOW - now) + 1)
                    raise TooManyAttempts(f"too many failed logins; try again in {wait} s", wait)
            row = conn.execute(select(users).where(users.c.name == name)).first() if possible else None
        stored = row.password_hash if row is not None else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
            ok = row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        with self.db.connect() as conn:
            if not ok or row is None:
                conn.execute(delete(login_failures).where(login_failures.c.at < now - FAILURE_WINDOW))
                conn.execute(insert(login_failures), [{"key": key, "at": now} for key in keys])
                return None
            conn.execute(delete(login_failures).where(login_failures.c.key == user_key))
            if self.hasher.check_needs_rehash(stored):
                conn.execute(update(users).where(users.c.id == row.id).values(password_hash=self.hasher.hash(password)))
        return User.from_row(row)

    # Tokens.

    def create_token(
        self, owner: str, role: Role, name: str = "", expires_in_days: float | None = None
    ) -> tuple[Token, str]:
        """Create a token acting for ``owner`` with ``role`` (no higher than the owner's), working
        for ``expires_in_days`` (None: until it is revoked).

        Returns the token and its secret, which is shown this once and never stored.
        """
        user = self.user_named(owner)
        if not user.role.allows(role):
            raise InvalidInput(f"a token of {owner} may have at most the role {user.role} (asked: {role})")
        if expires_in_days is not None and not 0 < expires_in_days <= MAX_TOKEN_DAYS:
            raise InvalidInput(f"a token expires after more than 0 and up to {MAX_TOKEN_DAYS} days, or never")
        now = time.time()
        name = CONTROL.sub("", name or "").strip()[:64] or "token"
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(4)
        with self.db.connect() as conn:
            conn.execute(
                insert(tokens).values(
                    id=token_id,
                    user_id=user.id,
                    name=name,
                    role=role,
                    secret_hash=_digest(secret),
                    created_at=now,
                    expires_at=None if expires_in_days is None else now + expires_in_days * 86400,
                )
            )
        return self.token(token_id), secret

    def tokens(self, owner: str | None = None) -> list[Token]:
        """Return the tokens (of one account), newest first."""
        query = self._token_query().order_by(tokens.c.created_at.desc())
        if owner is not None:
            query = query.where(users.c.id == self.user_named(owner).id)
        with self.db.connect() as conn:
            return [self._token(r) for r in conn.execute(query)]

    def token(self, token_id: str) -> Token:
        """Return one token by id."""
        if not TOKEN_ID.fullmatch(token_id):  # none has such an id (nor could PostgreSQL compare a NUL)
            raise NotFound(f"no token {token_id!r}")
        with self.db.connect() as conn:
            row = conn.execute(self._token_query().where(tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return self._token(row)

    def revoke_token(self, token_id: str, owner: str | None = None) -> Token:
        """Revoke a token (of ``owner``, when given); it stays listed, marked revoked."""
        token = self.token(token_id)
        if owner is not None and token.owner != owner:
            raise NotFound(f"no token {token_id!r}")
        with self.db.connect() as conn:
            live = tokens.c.id == token_id, tokens.c.revoked_at.is_(None)
            conn.execute(update(tokens).where(*live).values(revoked_at=time.time()))
        return self.token(token_id)

    def resolve(self, secret: str) -> tuple[User, Role, float | None] | None:
        """Return the account a token acts for, the role it grants now and when it expires (None:
        never); None if no token has this secret, Unauthenticated saying when if it was revoked or
        expired.

        The role is the lower of the token's and its owner's current role.
        """
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        now = time.time()
        with self.db.connect() as conn:
            row = conn.execute(
                select(tokens, users.c.name.label("owner"), users.c.role.label("owner_role"))
                .add_columns(users.c.created_at.label("owner_created"), users.c.session_epoch)
                .join(users, users.c.id == tokens.c.user_id)
                .where(tokens.c.secret_hash == _digest(secret))
            ).first()
            if row is None:
                return None
            if row.revoked_at is not None:
                raise Unauthenticated(f"the token was revoked {_utc(row.revoked_at)}")
            if row.expires_at is not None and now >= row.expires_at:
                raise Unauthenticated(f"the token expired {_utc(row.expires_at)}: make a new one")
            if row.last_used_at is None or row.last_used_at < now - LAST_USE_PRECISION:
                conn.execute(update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
        owner = User(row.user_id, row.owner, Role(row.owner_role), row.owner_created, row.session_epoch)
        granted = min(Role(row.role), owner.role, key=lambda r: r.rank)
        return owner, granted, row.expires_at

    def _token_query(self) -> Any:
        return select(tokens, users.c.name.label("owner")).join(users, users.c.id == tokens.c.user_id)

    @staticmethod
    def _token(row: Any) -> Token:
        return Token(
            row.id,
            row.owner,
            row.name,
            Role(row.role),
            row.created_at,
            row.last_used_at,
            row.revoked_at,
            row.expires_at,
        )


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def check_name(name: str) -> None:
    """Refuse a name an account cannot have."""
    if not NAME.fullmatch(name):
        raise InvalidInput("a name is 1 to 64 letters, digits or . _ @ -, starting with a letter or digit")


def check_password(password: str) -> None:
    """Refuse a password too short (or absurdly long) to be used."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
