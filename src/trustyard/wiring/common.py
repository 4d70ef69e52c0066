"""The parts every root builds alike from settings: the blob driver, the token-signing
passphrase (also the key that seals webhook secrets) and the LDAP directory."""

from __future__ import annotations

import os
import secrets

from trustyard.auth.ldap import LdapConfig, LdapDirectory
from trustyard.auth.ldap_accounts import LdapAccounts
from trustyard.config import LdapSettings, Settings
from trustyard.storage.filesystem import FilesystemDriver
from trustyard.storage.interfaces import BlobDriver


def make_driver(settings: Settings) -> BlobDriver:
    return FilesystemDriver(settings.blob_root, fsync=settings.storage.fsync)


def signing_passphrase(settings: Settings) -> str:
    """The passphrase of the token-signing key: configured, or generated once per data folder."""
    if settings.auth.signing_passphrase is not None:
        return settings.auth.signing_passphrase.get_secret_value()
    path = settings.data_dir / "signing.passphrase"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def ldap_config(ldap: LdapSettings) -> LdapConfig:
    """The directory settings as `LdapConfig`; ValueError names what is wrong with them."""
    if not (ldap.url and ldap.user_base_dn and ldap.group_base_dn):
        raise ValueError("LDAP needs url, user_base_dn and group_base_dn")
    return LdapConfig(
        url=ldap.url,
        user_base_dn=ldap.user_base_dn,
        group_base_dn=ldap.group_base_dn,
        bind_dn=ldap.bind_dn,
        bind_password=ldap.bind_password.get_secret_value() if ldap.bind_password else None,
        user_filter=ldap.user_filter,
        username_attribute=ldap.username_attribute,
        email_attribute=ldap.email_attribute,
        display_name_attribute=ldap.display_name_attribute,
        group_filter=ldap.group_filter,
        group_name_attribute=ldap.group_name_attribute,
        start_tls=ldap.start_tls,
        ca_file=str(ldap.ca_file) if ldap.ca_file else None,
        timeout=ldap.timeout,
    )


def make_ldap(settings: Settings) -> LdapAccounts | None:
    if not settings.ldap.enabled:
        return None
    return LdapAccounts(LdapDirectory(ldap_config(settings.ldap)))
