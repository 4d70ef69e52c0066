"""The management API (/api/v1): users, organizations, teams, grants, robots and tokens."""
