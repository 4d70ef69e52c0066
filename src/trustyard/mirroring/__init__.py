"""Mirroring between registries (issue 13): remotes, push and pull mirroring policies on the
policy engine's rules, webhook-triggered pulls, runs with per-item status."""
