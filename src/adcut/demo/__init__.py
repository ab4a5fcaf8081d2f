"""The built-in example: generated episodes with known ads, and the ``adcut demo`` run over them."""
