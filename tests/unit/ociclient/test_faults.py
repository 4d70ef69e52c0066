"""The OCI client against misbehaving loopback servers: clear errors, no hang, resume."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.faultserver import FaultServer
from trustyard.ociclient.client import RegistryClient
from trustyard.ociclient.interfaces import (
    ClientLimits,
    RemoteEndpoint,
    RemoteError,
    RemoteProtocolError,
    RemoteRateLimited,
    RemoteTimeout,
    RemoteTLSError,
)

FAST = ClientLimits(
    connect_timeout=2, read_timeout=1, max_attempts=2, backoff_base=0.01, chunk_bytes=4096
)


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str, str], str] = {}

    def load(self, key: str, repository: str, digest: str) -> str | None:
        return self.saved.get((key, repository, digest))

    def save(self, key: str, repository: str, digest: str, location: str) -> None:
        self.saved[(key, repository, digest)] = location

    def drop(self, key: str, repository: str, digest: str) -> None:
        self.saved.pop((key, repository, digest), None)


def test_garbage_is_a_protocol_error() -> None:
    with (
        FaultServer("garbage") as srv,
        RegistryClient(RemoteEndpoint(srv.url), FAST) as c,
        pytest.raises(RemoteProtocolError, match="not JSON"),
    ):
        c.tags("a", limit=5)


def test_a_server_answering_200_to_anything_has_no_blobs() -> None:
    """A push would skip every blob a garbage server says it has: refused, not believed."""
    with (
        FaultServer("garbage") as srv,
        RegistryClient(RemoteEndpoint(srv.url), FAST) as c,
        pytest.raises(RemoteProtocolError, match="without naming it"),
    ):
        c.has_blob("a", "sha256:" + "0" * 64)


def test_hang_is_a_timeout() -> None:
    with (
        FaultServer("hang") as srv,
        RegistryClient(RemoteEndpoint(srv.url), FAST) as c,
        pytest.raises(RemoteTimeout),
    ):
        c.ping()


def test_long_retry_after_is_rate_limited_at_once() -> None:
    with FaultServer("ratelimit", retry_after=300) as srv:
        with (
            RegistryClient(RemoteEndpoint(srv.url), FAST) as c,
            pytest.raises(RemoteRateLimited, match="Retry-After 300 s is longer"),
        ):
            c.ping()
        assert len(srv.requests) == 1


def test_dropped_upload_resumes_from_the_checkpoint() -> None:
    data = os.urandom(40_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def open_stream(offset: int) -> Iterator[Iterator[bytes]]:
        yield iter([data[offset:]])

    checkpoints = MemoryCheckpoints()
    with FaultServer("upload", cut_after=10_000) as srv:
        with RegistryClient(RemoteEndpoint(srv.url), FAST, checkpoints=checkpoints) as c:
            with pytest.raises(RemoteError):
                c.push_blob("x", digest, len(data), open_stream)
            assert checkpoints.saved
            kept = srv.body_bytes
            sent = c.push_blob("x", digest, len(data), open_stream)
        assert sent.how == "uploaded"
        assert srv.blobs[digest] == data
        assert sent.bytes_sent == len(data) - kept
        assert srv.body_bytes == len(data)  # nothing sent twice
        assert not checkpoints.saved


def _self_signed(tmp: Path) -> tuple[str, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp / "cert.pem").write_text(pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(tmp / "cert.pem"), str(tmp / "key.pem"), pem


def test_self_signed_tls_refused_then_trusted_with_its_ca(tmp_path: Path) -> None:
    cert, key, pem = _self_signed(tmp_path)
    with FaultServer("upload", tls=(cert, key)) as srv:
        with (
            RegistryClient(RemoteEndpoint(srv.url), FAST) as c,
            pytest.raises(RemoteTLSError, match="TLS certificate not trusted"),
        ):
            c.ping()
        with RegistryClient(RemoteEndpoint(srv.url, ca_certificate=pem), FAST) as c:
            assert "reached" in c.ping()
        with RegistryClient(RemoteEndpoint(srv.url, tls_verify=False), FAST) as c:
            assert "reached" in c.ping()


def test_short_retry_after_is_honoured_and_retried() -> None:
    with FaultServer("ratelimit-once", retry_after=0) as srv:
        with RegistryClient(RemoteEndpoint(srv.url), FAST) as c:
            assert "reached" in c.ping()
        assert srv.requests == [("GET", "/v2/"), ("GET", "/v2/")]
