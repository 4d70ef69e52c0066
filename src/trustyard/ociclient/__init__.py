"""A client of other OCI registries (issue 13): what mirroring, and later caching, use to talk
to a remote registry. Infrastructure: it knows HTTP and the distribution API, no feature."""
