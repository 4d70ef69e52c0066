"""Pure OCI vocabulary: digests, names, media types, manifests, ranges and error codes.

Nothing in this package does I/O; everything above it may import it.
"""
