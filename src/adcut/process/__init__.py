"""Applying a model to episodes and folders: detection, output files and the cut audio, skipping what is done."""
