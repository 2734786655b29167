"""The audit trail (痕迹管理): an append-only, hash-chained log of who did what, when, from where."""
