"""Figures: matplotlib figures from arrays, and the layer that draws them from files."""
