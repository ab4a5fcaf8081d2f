"""The MP3 copy path of the cut: frames read, copied byte for byte, and rebuilt only at the joins."""
