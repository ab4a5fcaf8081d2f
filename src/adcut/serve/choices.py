"""What a user chooses for an ad-free feed: the mark on its title and how episodes not processed yet are
listed. Free of heavy imports: the command line reads these for its --help."""

from __future__ import annotations

DEFAULT_MARK = " (ad-free)"
# What the ad-free feed does with episodes not processed yet: leave them out (None, the default),
# list them with their original audio, or list them with their ad-free URL, which answers
# 503 + Retry-After until the cut is ready.
PENDING_ORIGINAL, PENDING_WAIT = "original", "wait"
PENDING_MODES = (PENDING_ORIGINAL, PENDING_WAIT)
