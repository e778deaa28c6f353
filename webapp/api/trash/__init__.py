"""The trash: deleted images kept TRASH_DAYS, restorable (editors), removable for good (admins)."""
