"""Command line (L4): `trustyard serve`, `migrate`, `fsck`."""
