"""Models and data: the registries, the built-in data files, and the user's own model and data."""
