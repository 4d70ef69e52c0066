"""Metadata database (L1): engine, tables and migrations."""
