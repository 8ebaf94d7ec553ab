"""Plain keyword-only functions over the ORM, used by routes and workers alike."""
