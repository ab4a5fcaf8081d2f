"""Audio in and out through PyAV: decoding, encoding, and writing the cut episode."""
