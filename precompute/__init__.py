"""precompute package."""
