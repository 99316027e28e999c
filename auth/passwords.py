"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's advice)."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
_hasher = PasswordHasher()
# Each argon2id check takes 64 MiB and four threads (RFC 9106's parameters, kept). Sign-ins
# arriving together, a leadership team opening the dashboard at once, each took its own
# 64 MiB at the same moment: a web worker's memory peaked 4 x 64 MiB above its working size
# and the burst starved every other request of CPU. One check at a time per process bounds
# that; the next sign-in waits a fraction of a second.
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
