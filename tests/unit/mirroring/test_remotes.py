"""mirroring/remotes.py on SQLite and PostgreSQL: a remote's life (created, read, listed,
changed, renamed, deleted), what is refused (names, URLs with credentials, a path or a query,
a CA that is not PEM, a taken name), the secret sealed at rest under mirroring's own
derivation and never in a record, `endpoint` opening it, a remote in use refusing deletion,
and "test connection" turning the client's RemoteError into a diagnosis."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, insert, select

from tests.support.databases import migrated_engine
from trustyard.config import MirroringSettings
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import mirror_policies, remotes
from trustyard.errors import Conflict
from trustyard.mirroring.interfaces import MirrorInvalid, RemoteInUse, RemoteNotKnown
from trustyard.mirroring.remotes import (
    RemoteService,
    RemoteStore,
    check_url,
    client_limits,
    secret_box,
)
from trustyard.ociclient.interfaces import ClientLimits, RemoteAuthFailed, RemoteEndpoint
from trustyard.webhooks.interfaces import SecretUnreadable
from trustyard.webhooks.signing import SecretBox

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = "a passphrase for tests"
_names = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as made:
        yield made


def service(**kwargs: object) -> RemoteService:
    return RemoteService(
        RemoteStore(), secret_box(PASSPHRASE), MirroringSettings(), clock=lambda: T0, **kwargs
    )  # type: ignore[arg-type]


def name() -> str:
    return f"remote-{next(_names)}"


def pem_certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_a_remote_is_created_read_listed_and_its_secret_is_sealed(engine: Engine) -> None:
    remotes_ = service()
    label = name()
    with write_tx(engine) as conn:
        made = remotes_.create(
            conn,
            name=label,
            url="HTTPS://Registry.Example.com:5443/",
            username="robot$ci",
            password="s3cret-token-value",
            description="the other site",
            actor="admin",
        )
    assert made.url == "https://registry.example.com:5443"
    assert made.has_secret
    assert made.username == "robot$ci"
    assert made.created_by == "admin"
    assert made.max_concurrency == MirroringSettings().max_concurrency
    assert "s3cret-token-value" not in repr(made)
    with read_tx(engine) as conn:
        stored = conn.execute(select(remotes.c.secret).where(remotes.c.id == made.id)).scalar()
        assert stored is not None
        assert "s3cret-token-value" not in stored
        assert remotes_.get(conn, label) == made
        assert remotes_.get_by_id(conn, made.id) == made
        assert label in [r.name for r in remotes_.list(conn)]
        endpoint = remotes_.endpoint(conn, made.id)
    assert endpoint.password == "s3cret-token-value"
    assert endpoint.key == str(made.id)
    assert endpoint.url == made.url
    assert endpoint.username == "robot$ci"
    assert "s3cret-token-value" not in repr(endpoint)
    # sealed under mirroring's own derivation: webhooks' box (same passphrase) cannot open it
    with pytest.raises(SecretUnreadable):
        SecretBox(PASSPHRASE).open(stored)


def test_webhooks_box_keeps_its_derivation() -> None:
    """The optional info/aad of SecretBox default to webhooks' own: what a box made before
    the parameters existed sealed still opens, and the two derivations do not mix."""
    # sealed by SecretBox as it was before (bcdc580), under PASSPHRASE
    sealed = "v1.iYQZvmJAWPulsUqg4FR2ZsyNeeUCYJKIFHpZhoelTOeyjoz03mElxmD9cfOgZovWyReF_khuLA=="
    assert SecretBox(PASSPHRASE).open(sealed) == "whsec_sealed-by-the-old-box"
    with pytest.raises(SecretUnreadable):
        secret_box(PASSPHRASE).open(sealed)
    again = secret_box(PASSPHRASE).seal("whsec_value")
    assert secret_box(PASSPHRASE).open(again) == "whsec_value"
    with pytest.raises(SecretUnreadable):
        SecretBox(PASSPHRASE).open(again)


def test_update_keeps_clears_and_renames(engine: Engine) -> None:
    remotes_ = service()
    label, renamed = name(), name()
    with write_tx(engine) as conn:
        made = remotes_.create(
            conn, name=label, url="https://a.example", username="u", password="p", actor=None
        )
        kept = remotes_.update(conn, label, actor="admin", description="changed")
        assert kept.has_secret
        assert kept.description == "changed"
        assert kept.username == "u"
        assert remotes_.endpoint(conn, made.id).password == "p"
        changed = remotes_.update(
            conn, label, actor="admin", password="q", max_concurrency=9, tls_verify=False
        )
        assert remotes_.endpoint(conn, made.id).password == "q"
        assert changed.max_concurrency == 9
        assert not changed.tls_verify
        cleared = remotes_.update(conn, label, actor="admin", password="", username=None)
        assert not cleared.has_secret
        assert cleared.username is None
        assert remotes_.endpoint(conn, made.id).password is None
        moved = remotes_.update(conn, label, actor="admin", new_name=renamed)
        assert moved.id == made.id
        assert moved.name == renamed
        with pytest.raises(RemoteNotKnown):
            remotes_.get(conn, label)
        with pytest.raises(RemoteNotKnown):
            remotes_.update(conn, label, actor=None, description="x")


@pytest.mark.parametrize(
    ("where", "kwargs"),
    [
        ("name", {"name": "Bad Name"}),
        ("name", {"name": "-leading"}),
        ("name", {"name": "x" * 65}),
        ("url", {"url": "ftp://registry.example"}),
        ("url", {"url": "https://user:pw@registry.example"}),
        ("url", {"url": "https://registry.example/v2/"}),
        ("url", {"url": "https://registry.example?x=1"}),
        ("url", {"url": "https://registry.example:99999"}),
        ("url", {"url": "https://"}),
        ("url", {"url": ""}),
        ("caCertificate", {"ca_certificate": "not a certificate"}),
        (
            "caCertificate",
            {"ca_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
        ),
        ("maxConcurrency", {"max_concurrency": 0}),
        ("maxConcurrency", {"max_concurrency": 65}),
        ("username", {"username": "a\nb"}),
        ("password", {"password": "a\x00b"}),
        ("tlsVerify", {"tls_verify": "yes"}),
    ],
)
def test_bad_remotes_are_refused_naming_the_field(
    engine: Engine, where: str, kwargs: dict[str, object]
) -> None:
    given: dict[str, object] = {"name": name(), "url": "https://registry.example", **kwargs}
    with write_tx(engine) as conn, pytest.raises(MirrorInvalid) as caught:
        service().create(conn, actor=None, **given)  # type: ignore[arg-type]
    assert caught.value.where == where
    assert "pw" not in caught.value.message


def test_a_pem_ca_is_kept_and_a_taken_name_conflicts(engine: Engine) -> None:
    remotes_ = service()
    label = name()
    pem = pem_certificate()
    with write_tx(engine) as conn:
        made = remotes_.create(
            conn, name=label, url="https://[::1]:5000", ca_certificate=pem, actor=None
        )
        assert made.ca_certificate == pem
        assert made.url == "https://[::1]:5000"
        assert remotes_.endpoint(conn, made.id).ca_certificate == pem
    with write_tx(engine) as conn, pytest.raises(Conflict):
        remotes_.create(conn, name=label, url="https://b.example", actor=None)


def test_a_remote_in_use_refuses_deletion(engine: Engine) -> None:
    remotes_ = service()
    label = name()
    with write_tx(engine) as conn:
        made = remotes_.create(conn, name=label, url="https://c.example", actor=None)
        repository = RepositoryService().create(conn, f"mirror{next(_names)}/app")
        conn.execute(
            insert(mirror_policies).values(
                direction="push",
                repository_id=repository.id,
                remote_id=made.id,
                remote_repository="app",
                created_at=T0,
                updated_at=T0,
            )
        )
    with write_tx(engine) as conn, pytest.raises(RemoteInUse) as caught:
        remotes_.delete(conn, label)
    assert "1 mirroring policy" in caught.value.message
    with write_tx(engine) as conn:
        conn.execute(mirror_policies.delete().where(mirror_policies.c.remote_id == made.id))
        assert remotes_.delete(conn, label).id == made.id
        with pytest.raises(RemoteNotKnown):
            remotes_.get(conn, label)
        with pytest.raises(RemoteNotKnown):
            remotes_.delete(conn, label)


class FakePinger:
    """Stands in for the client in the one test of the mapping below; the real client is
    tested against real servers in tests/unit/ociclient and tests/integration."""

    def __init__(self, endpoint: RemoteEndpoint, limits: ClientLimits) -> None:
        self.endpoint = endpoint
        self.closed = False

    def ping(self) -> str:
        if self.endpoint.password != "right":
            raise RemoteAuthFailed("wrong credentials for remote (HTTP 401 from the token service)")
        return "reached /v2/ as robot"

    def close(self) -> None:
        self.closed = True


def test_test_connection_reports_the_diagnosis() -> None:
    made: list[FakePinger] = []

    def factory(endpoint: RemoteEndpoint, limits: ClientLimits) -> FakePinger:
        made.append(FakePinger(endpoint, limits))
        return made[-1]

    remotes_ = service(client_factory=factory)
    good = remotes_.test(RemoteEndpoint(url="https://a.example", username="u", password="right"))
    assert good.ok
    assert good.kind is None
    assert good.message == "reached /v2/ as robot"
    bad = remotes_.test(RemoteEndpoint(url="https://a.example", username="u", password="wrong"))
    assert not bad.ok
    assert bad.kind == RemoteAuthFailed.kind
    assert bad.message == "wrong credentials for remote (HTTP 401 from the token service)"
    assert all(client.closed for client in made)


def test_client_limits_follow_the_settings() -> None:
    limits = client_limits(
        MirroringSettings(read_timeout_seconds=5, max_attempts=2, chunk_bytes=1024 * 1024)
    )
    assert limits.read_timeout == 5
    assert limits.max_attempts == 2
    assert limits.chunk_bytes == 1024 * 1024


def test_check_url_forms() -> None:
    assert check_url("http://localhost:5000") == "http://localhost:5000"
    assert check_url("https://registry.example/") == "https://registry.example"


def test_a_name_taken_meanwhile_is_a_conflict_not_an_error(engine: Engine) -> None:
    """Two creations racing past the service's check: the store's insert (and a rename)
    answer Conflict, and the caller's transaction stays usable (a savepoint)."""
    remotes_ = service()
    label, other = name(), name()
    with write_tx(engine) as conn:
        remotes_.create(conn, name=label, url="https://d.example", actor=None)
        made = remotes_.create(conn, name=other, url="https://e.example", actor=None)
        row = {"name": label, "url": "https://f.example", "created_at": T0, "updated_at": T0}
        with pytest.raises(Conflict):
            remotes_.store.insert(conn, row)
        with pytest.raises(Conflict):
            remotes_.store.update(conn, made.id, {"name": label})
        assert remotes_.get(conn, other).id == made.id
