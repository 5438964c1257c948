"""ngstate package."""
