"""Blob storage drivers (L1): where blob and upload bytes live."""
