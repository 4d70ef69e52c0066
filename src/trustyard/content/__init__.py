"""Content domain (L2a): repositories, blobs, uploads, manifests, tags."""
