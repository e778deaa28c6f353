"""The pages blueprint with every view registered: search, adding and jobs, library and images."""

from __future__ import annotations

from webapp.pages import account, activity, albums, duplicates, images, jobs, search, trash  # noqa: F401  (importing a module registers its views)
from webapp.pages.blueprint import blp

__all__ = ["blp"]
