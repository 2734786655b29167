"""People: user accounts, roles with data scopes, login security and API tokens."""
