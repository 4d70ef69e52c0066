"""Password hashing never raises on bad input, hides unknown users, and enforces the policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerificationError

from trustyard.auth.passwords import (
    DEFAULT_HASHER,
    MAX_LENGTH,
    WeakPassword,
    check_password_policy,
    dummy_hash,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)
from trustyard.errors import Invalid

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery staple"


class SpyHasher(PasswordHasher):
    """Records the parameters of every hash it verifies (the work argon2 does)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=16, parallelism=2)
        self.verified: list[tuple[int, int, int]] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # type: ignore[override]
        text = hash if isinstance(hash, str) else hash.decode()
        params = extract_parameters(text)
        self.verified.append((params.time_cost, params.memory_cost, params.parallelism))
        return super().verify(hash, password)


def test_hash_then_verify() -> None:
    stored = hash_password(PASSWORD, hasher=CHEAP)
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert verify_password(stored, PASSWORD, hasher=CHEAP) is True
    assert verify_password(stored, PASSWORD + " ", hasher=CHEAP) is False
    assert verify_password(stored, "Correct horse battery staple", hasher=CHEAP) is False
    assert verify_password(stored, "", hasher=CHEAP) is False


def test_each_hash_has_its_own_salt() -> None:
    first, second = (hash_password(PASSWORD, hasher=CHEAP) for _ in range(2))
    assert first != second
    assert verify_password(first, PASSWORD, hasher=CHEAP)
    assert verify_password(second, PASSWORD, hasher=CHEAP)


def test_default_parameters_are_argon2id_owasp() -> None:
    stored = hash_password(PASSWORD)
    params = extract_parameters(stored)
    assert (params.type, params.memory_cost, params.time_cost, params.parallelism) == (
        Type.ID,
        19 * 1024,
        2,
        1,
    )
    assert (params.salt_len, params.hash_len) == (16, 32)
    assert verify_password(stored, PASSWORD)
    assert not needs_rehash(stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "junk",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1$AAAA",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$!!!!",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$é",
        "\ud800",
    ],
)
def test_verify_never_raises_on_an_unusable_hash(stored: str) -> None:
    spy = SpyHasher()
    assert verify_password(stored, PASSWORD, hasher=spy) is False
    assert needs_rehash(stored, hasher=spy) is True


def test_an_unreadable_hash_costs_a_full_verification() -> None:
    spy = SpyHasher()
    assert verify_password("junk", PASSWORD, hasher=spy) is False
    assert spy.verified[-1] == (1, 16, 2)


def test_unencodable_passwords_are_hashed_not_refused() -> None:
    stored = hash_password("lone \ud800 surrogate", hasher=CHEAP)
    assert verify_password(stored, "lone \ud800 surrogate", hasher=CHEAP)
    assert not verify_password(stored, "lone \udc00 surrogate", hasher=CHEAP)
    assert not verify_password(hash_password(PASSWORD, hasher=CHEAP), "\udfff", hasher=CHEAP)


def test_needs_rehash_when_parameters_change() -> None:
    old = hash_password(PASSWORD, hasher=CHEAP)
    assert needs_rehash(old, hasher=CHEAP) is False
    assert needs_rehash(old, hasher=DEFAULT_HASHER) is True


def test_dummy_verify_does_the_work_of_a_real_verification() -> None:
    spy = SpyHasher()
    real = hash_password(PASSWORD, hasher=spy)
    verify_password(real, "wrong password", hasher=spy)
    dummy_verify(hasher=spy)
    assert spy.verified == [(1, 16, 2), (1, 16, 2)]


def test_dummy_hash_is_well_formed_and_matches_nothing() -> None:
    dummy = dummy_hash(CHEAP)
    params = extract_parameters(dummy)
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (
        Type.ID,
        1,
        8,
        1,
    )
    with pytest.raises(VerificationError):
        CHEAP.verify(dummy, "")
    assert verify_password(dummy, "not a password", hasher=CHEAP) is False


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "empty"),
        (" " * 20, "only whitespace"),
        ("\t\n \u3000" * 4, "only whitespace"),
        ("short pass", "has 10 characters; use at least 12"),
        ("elevenchars", "has 11 characters"),
        ("a" * 30, "repeats a single character"),
        ("x" * (MAX_LENGTH + 1), f"longer than {MAX_LENGTH}"),
        ("Frederick-The-Great", "is the username"),
    ],
)
def test_policy_refuses(password: str, message: str) -> None:
    with pytest.raises(WeakPassword, match=message):
        check_password_policy(password, username="frederick-the-great")


@pytest.mark.parametrize(
    "password",
    [
        "twelve chars",
        "correct horse battery staple",
        "Tr0ub4dor&3xy",
        "ünïcödé pässwörd",
        "x" * (MAX_LENGTH - 1) + "y",
        "  spaces around  ",
    ],
)
def test_policy_accepts(password: str) -> None:
    check_password_policy(password, username="frederick")
    check_password_policy(password)


def test_weak_password_is_an_access_domain_error() -> None:
    assert issubclass(WeakPassword, Invalid)
