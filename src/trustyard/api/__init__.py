"""The management API (/api/v1): users, organizations, teams, grants, robots, tokens,
repositories and the audit log."""
