"""The OCI Distribution API (/v2) as a lean ASGI application (L3: HTTP only here)."""
