"""Plain data, units and errors: what every layer shares. Pure, imports nothing of the project."""
