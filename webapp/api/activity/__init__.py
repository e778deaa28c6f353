"""The activity log: who changed what, and when (admins only)."""
