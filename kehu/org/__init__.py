"""The organisation tree: units of any depth (province → city → area → station, or bureau → county → branch)."""
