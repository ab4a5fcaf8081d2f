"""Text formats adcut reads and writes: label files and the exported segment/chapter files."""
