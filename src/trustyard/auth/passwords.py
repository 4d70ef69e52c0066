"""Password hashing (argon2id) and the password policy.

Hashes use argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): strong, and cheap
enough that a token endpoint verifying Basic credentials does not exhaust two cores. Pass a
cheaper `PasswordHasher` in tests. Verification never raises: a wrong password, an invalid or
foreign stored hash, or an unencodable password all answer False after the same amount of work,
and `dummy_verify` spends that work for unknown users, so timing does not reveal which
usernames exist.

Policy (NIST SP 800-63B style): at least 12 characters and no composition rules, so a
passphrase such as "correct horse battery staple" is welcome (any passphrase of three or more
real words already has 12 characters); empty and all-whitespace passwords, one repeated
character, and the username itself are refused.
"""

from __future__ import annotations

import base64
import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from trustyard.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 1024  # characters; longer input is refused, not truncated

DEFAULT_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class WeakPassword(Invalid):
    """A new password breaks the policy; the message says which rule."""


def check_password_policy(password: str, *, username: str | None = None) -> None:
    """Raise `WeakPassword` unless `password` may be set (for `username`, when given)."""
    if not password:
        raise WeakPassword("the password is empty")
    if password.isspace():
        raise WeakPassword("the password is only whitespace")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"the password has {len(password)} characters; use at least {MIN_LENGTH} "
            "(a passphrase of a few words is easiest to remember)"
        )
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password is longer than {MAX_LENGTH} characters")
    if len(set(password)) == 1:
        raise WeakPassword("the password repeats a single character")
    if username is not None and password.casefold() == username.casefold():
        raise WeakPassword("the password is the username")


def hash_password(password: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The argon2id hash to store (PHC string format, salt included)."""
    return hasher.hash(_encode(password))


def verify_password(
    stored_hash: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> bool:
    """True only when `password` matches `stored_hash`; never raises."""
    try:
        return hasher.verify(stored_hash, _encode(password))
    except VerificationError:  # mismatch, or argon2 refused the stored parameters
        return False
    except (InvalidHashError, ValueError):  # unreadable hash: do the work anyway
        dummy_verify(hasher=hasher)
        return False


def needs_rehash(stored_hash: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """Whether a hash that just verified should be replaced (older parameters, or unreadable)."""
    try:
        return hasher.check_needs_rehash(stored_hash)
    except ValueError:  # InvalidHashError is a ValueError
        return True


def dummy_verify(*, hasher: PasswordHasher = DEFAULT_HASHER) -> None:
    """Spend the time of one verification, for a login whose user does not exist."""
    with contextlib.suppress(VerificationError):
        hasher.verify(dummy_hash(hasher), b"not a password")


def dummy_hash(hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """A well-formed hash with `hasher`'s parameters that matches no password in practice."""
    salt = _b64(bytes(hasher.salt_len))
    digest = _b64(bytes(hasher.hash_len))
    params = f"m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
    return f"$argon2{hasher.type.name.lower()}$v=19${params}${salt}${digest}"


def _encode(password: str) -> bytes:
    # surrogatepass: a password with lone surrogates is hashed like any other, never an error.
    return password.encode("utf-8", "surrogatepass")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")
