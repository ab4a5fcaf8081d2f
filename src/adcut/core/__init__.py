"""Primitives every stage shares: time units, labelled segments, atomic file writes."""
