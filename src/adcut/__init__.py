"""adcut: learn to tell ads from content in audio, then find and cut them out of episodes."""

__version__ = "0.1.0"
