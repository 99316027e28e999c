"""Password hashing with argon2id, at OWASP's recommended parameters."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
# OWASP's Password Storage Cheat Sheet: argon2id with 19 MiB, two passes, one lane. With
# argon2-cffi's defaults (RFC 9106's 64 MiB, three passes, four lanes) a check cost 0.17 s
# of CPU, and a leadership team signing in at once (50 checks within seconds on a 2-core
# server) queued every other request behind 8.6 s of hashing; these cost 0.02 s each.
# Hashes made with other parameters still verify: each hash carries its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Sign-ins arriving together must not each take the CPU at the same moment and starve the
# page requests: one check at a time per process; the next sign-in waits milliseconds.
_ONE_AT_A_TIME = threading.BoundedSemaphore(1)
# Verifying against this when the user does not exist costs the same time as a real check,
# so response times do not tell which emails have accounts.
_DUMMY = _hasher.hash("not-a-password-of-anyone")


class PasswordPolicyError(ValueError):
    """A new password is too weak to accept."""


def check_policy(password: str, *, email: str | None = None) -> None:
    """Raise PasswordPolicyError when `password` is too short or is the email itself."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"a password needs at least {MIN_LENGTH} characters")
    if email and password.strip().lower() == email.strip().lower():
        raise PasswordPolicyError("a password must not be the email address")


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; the clear text is never stored)."""
    with _ONE_AT_A_TIME:
        return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches the stored hash; False otherwise (or with no hash)."""
    try:
        with _ONE_AT_A_TIME:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)
