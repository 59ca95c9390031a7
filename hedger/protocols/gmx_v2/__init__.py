"""GMX v2 (gmx-synthetics) venue: its position math in ``model`` (pure, GMX's integer units)."""
