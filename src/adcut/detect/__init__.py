"""Whole-episode detection: window probabilities, the coarse-to-fine scan, smoothing, edges, refinement, review."""
