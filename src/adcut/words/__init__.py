"""Hearing ads through their words: offline speech recognition (pocketsphinx) and sponsor phrases.

``phrases.py`` holds the built-in English sponsor phrases and reads a user's own; ``recognise.py``
spots phrases in 16 kHz speech (keyword spotting) and transcribes it (for the phrase learner);
``learner.py`` keeps the phrases far more frequent in labelled ads than in content.
"""
