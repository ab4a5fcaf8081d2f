"""The browser labeller: a local web server (``server.py``) and waveform peaks (``peaks.py``) for ``adcut label``."""
