"""trustyard: a trusted OCI container registry."""

__version__ = "0.1.0"
