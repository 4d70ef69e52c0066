"""Vulnerabilities: OSV records, each ecosystem's version order, and matching (issue 11).

A feature domain (L2b): it may import L0/L1, content and auth, never scanning or webhooks
directly, never registry/ or api/."""
