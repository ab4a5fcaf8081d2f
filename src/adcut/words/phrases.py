"""Sponsor phrases: the built-in English list, a user's own file, and their weights.

A phrase's weight is the evidence one hearing of it gives that an ad is being read (1.0: a
sponsor phrase that content hardly ever says). Roles: ``lead`` opens an ad ("brought to you by"),
``return`` closes it ("back to the show"), ``cue`` is said inside one ("promo code").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from adcut.errors import AdcutError

LEAD, CUE, RETURN = "lead", "cue", "return"


@dataclass(frozen=True)
class Phrase:
    text: str  # lower case words separated by single spaces
    weight: float = 1.0
    role: str = CUE

    def to_dict(self) -> dict:
        return {"text": self.text, "weight": round(float(self.weight), 4), "role": self.role}

    @classmethod
    def from_dict(cls, data: dict) -> Phrase:
        return cls(normalise(str(data["text"])), float(data.get("weight", 1.0)), str(data.get("role", CUE)))


# Built-in English sponsor language (words in the CMU dictionary that pocketsphinx ships).
BUILTIN_ENGLISH: tuple[Phrase, ...] = (
    Phrase("brought to you by", 1.0, LEAD),
    Phrase("sponsored by", 1.0, LEAD),
    Phrase("support for this show", 1.0, LEAD),
    Phrase("support for this podcast", 1.0, LEAD),
    Phrase("podcast comes from", 1.0, LEAD),
    Phrase("word from our sponsor", 1.0, LEAD),
    Phrase("our sponsor", 0.8, LEAD),
    Phrase("promo code", 1.0, CUE),
    Phrase(
        "use code", 0.6, CUE
    ),  # short: the one built-in phrase heard in espeak-ng talk (6 times in 14 min)
    Phrase("dot com slash", 1.0, CUE),
    Phrase("percent off", 1.0, CUE),
    Phrase("free trial", 0.8, CUE),
    Phrase("terms apply", 1.0, CUE),
    Phrase("first order", 0.6, CUE),
    Phrase("sign up today", 0.6, CUE),
    Phrase("back to the show", 1.0, RETURN),
    Phrase("supporting the show", 1.0, RETURN),
)


def normalise(text: str) -> str:
    """Lower case, letters, digits and apostrophes only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def read_phrases(path: Path) -> list[Phrase]:
    """A phrase file: one phrase a line, optionally ``<TAB>weight`` and ``<TAB>role``; ``#`` starts a comment."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise AdcutError(f"{path}: cannot read the phrase file ({error.strerror or error})") from None
    phrases = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split("\t")]
        text = normalise(parts[0])
        if not text:
            raise AdcutError(f"{path}:{number}: no words in {parts[0]!r}")
        try:
            weight = float(parts[1]) if len(parts) > 1 and parts[1] else 1.0
        except ValueError:
            raise AdcutError(f"{path}:{number}: weight {parts[1]!r} is not a number") from None
        role = parts[2] if len(parts) > 2 and parts[2] else CUE
        if role not in (LEAD, CUE, RETURN) or not 0 < weight <= 10:
            raise AdcutError(f"{path}:{number}: role must be lead, cue or return and weight in (0, 10]")
        phrases.append(Phrase(text, weight, role))
    if not phrases:
        raise AdcutError(f"{path}: contains no phrases")
    return phrases


def merge_phrases(*groups) -> tuple[Phrase, ...]:
    """One entry per phrase text; a later group's entry replaces an earlier one's."""
    merged: dict[str, Phrase] = {}
    for group in groups:
        for phrase in group or ():
            phrase = phrase if isinstance(phrase, Phrase) else Phrase.from_dict(phrase)
            merged[phrase.text] = phrase
    return tuple(merged.values())
