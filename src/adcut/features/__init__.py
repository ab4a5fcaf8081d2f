"""The features models read: MFCC + deltas on a fixed frame grid, for a whole episode."""
