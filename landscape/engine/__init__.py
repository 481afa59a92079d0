"""The numerics: grid, directions, surface evaluation, curvature, PCA and losses (no files, no flags)."""
