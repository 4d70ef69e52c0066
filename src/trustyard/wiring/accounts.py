"""The accounts gate (`auth.gate.Accounts`) as the settings describe it; None runs an open
registry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from trustyard.auth.access import AccessPolicy, Authenticator
from trustyard.auth.gate import Accounts
from trustyard.auth.login_throttle import LoginThrottle
from trustyard.auth.registry_tokens import RegistryTokens
from trustyard.auth.signing import SigningKeys
from trustyard.config import Settings
from trustyard.db.generation import access_generation_reader, credential_generation_reader
from trustyard.wiring.common import make_ldap, signing_passphrase


def make_accounts(settings: Settings, engine: Engine) -> Accounts | None:
    if not settings.auth.enabled:
        return None
    policy = AccessPolicy()
    keys = SigningKeys(signing_passphrase(settings))
    ttl = timedelta(seconds=settings.auth.token_ttl_seconds)
    return Accounts(
        engine=engine,
        authenticator=Authenticator(ldap=make_ldap(settings)),
        policy=policy,
        keys=keys,
        tokens=RegistryTokens(keys, policy, settings.auth.service, ttl),
        service=settings.auth.service,
        refresh_ttl=timedelta(seconds=settings.auth.refresh_token_ttl_seconds),
        generation=access_generation_reader(engine),
        credentials=credential_generation_reader(engine),
        throttle=LoginThrottle(
            first_lock=timedelta(seconds=settings.auth.login_first_lock_seconds)
        ),
    )
