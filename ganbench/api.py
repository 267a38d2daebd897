"""The public Python API (filled in by the interfaces layer)."""
