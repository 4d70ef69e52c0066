"""The /metrics edge (L3): HTTP, like registry/ and api/, but neither OCI nor REST; it has an
access rule of its own. It serves the counts of metrics/ (L1), which knows nothing of HTTP."""
