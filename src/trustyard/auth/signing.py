"""The token-signing key, kept in the database so that every replica signs and verifies alike.

The private key is stored as PKCS#8 PEM encrypted with a passphrase that lives outside the
database (a secret in the settings), so a database dump alone cannot mint tokens. Replicas that
start at the same moment may each generate a key; all of them then use the oldest active one,
so they converge on one signer. Rotation retires the current key and creates a new one; retired
keys still verify tokens until those expire.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from trustyard.auth.jwt_tokens import ALGORITHM, DEFAULT_ISSUER, TokenSigner
from trustyard.db.tables import signing_keys


class SigningKeys:
    def __init__(self, passphrase: str | bytes, *, issuer: str = DEFAULT_ISSUER) -> None:
        if not passphrase:
            raise ValueError("the signing keys need a non-empty passphrase")
        self._passphrase = passphrase
        self._issuer = issuer
        self._loaded: dict[str, TokenSigner] = {}

    def _load(self, kid: str, pem: str) -> TokenSigner:
        signer = self._loaded.get(kid)
        if signer is None:
            signer = TokenSigner.from_pem(pem.encode(), self._passphrase, issuer=self._issuer)
            self._loaded[kid] = signer
        return signer

    def _oldest_active(self, conn: Connection) -> TokenSigner | None:
        row = conn.execute(
            select(signing_keys.c.kid, signing_keys.c.private_key)
            .where(signing_keys.c.retired_at.is_(None))
            .order_by(signing_keys.c.created_at, signing_keys.c.kid)
            .limit(1)
        ).first()
        return self._load(row.kid, row.private_key) if row else None

    def _create(self, conn: Connection) -> None:
        signer = TokenSigner.generate(issuer=self._issuer)
        conn.execute(
            insert(signing_keys).values(
                kid=signer.kid,
                algorithm=ALGORITHM,
                private_key=signer.private_pem(self._passphrase).decode(),
                created_at=datetime.now(UTC),
            )
        )

    def current(self, conn: Connection) -> TokenSigner:
        """The key new tokens are signed with, created on first use."""
        signer = self._oldest_active(conn)
        if signer is None:
            self._create(conn)
            signer = self._oldest_active(conn)
            assert signer is not None
        return signer

    def for_kid(self, conn: Connection, kid: str) -> TokenSigner | None:
        """The key (active or retired) that signed a token with this `kid` header."""
        if kid in self._loaded:
            return self._loaded[kid]
        row = conn.execute(
            select(signing_keys.c.private_key).where(signing_keys.c.kid == kid)
        ).first()
        return self._load(kid, row.private_key) if row else None

    def rotate(self, conn: Connection) -> TokenSigner:
        """Retire every active key and start signing with a new one."""
        conn.execute(
            update(signing_keys)
            .where(signing_keys.c.retired_at.is_(None))
            .values(retired_at=datetime.now(UTC))
        )
        self._create(conn)
        signer = self._oldest_active(conn)
        assert signer is not None
        return signer
