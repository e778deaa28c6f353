"""What an account or a token may do: viewer < editor < admin."""

from __future__ import annotations

from enum import StrEnum

from webapp.errors import InvalidInput


class Role(StrEnum):
    """What an account (or a token) may do; each role may do what the ones before it may."""

    VIEWER = "viewer"  # search, browse, read images and jobs
    EDITOR = "editor"  # also add images, start, cancel and resume jobs, delete one image
    ADMIN = "admin"  # also empty the library, manage accounts and tokens

    @property
    def rank(self) -> int:
        """Return the role's place in the order viewer < editor < admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Tell whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


def role_named(name: str) -> Role:
    """Return the role called ``name``, or say which roles exist."""
    try:
        return Role(name)
    except ValueError:
        raise InvalidInput(f"no role called {name}; the roles are {', '.join(Role)}") from None
