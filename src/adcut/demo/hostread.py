"""Generated episodes with host-read ads: the host's TTS voice reads the sponsor copy, with no music bed.

Content is the host (an ``espeak-ng`` voice) talking; a host-read ad is the same voice, at the same
level, reading ad copy, sometimes after a lead-in ("a word from our sponsor"); a produced spot is
another voice reading copy over a music bed, louder (as ``synth`` ads are). Three draws with
different voices, brands and ad wording: ``train``, and ``test``, so that a phrase learner is tested
on copy it has not seen; ``holdout`` also has its own closings and lead-ins and says few of the
built-in sponsor phrases (the built-in list was chosen while reading ``train`` and ``test`` copy), to
measure how far the built-in list carries to other wording. The announcers of produced spots are
shared: such spots recur. ``espeak-ng`` is a Debian package (``.ci/run`` installs it).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass, field

import numpy as np

from adcut.core.segments import Segment, fill_background
from adcut.core.units import Seconds
from adcut.demo.synth import music_bed
from adcut.errors import AdcutError

# Hosts and announcers never share a voice (a host's voice is the show's, not an ad's). The draws' hosts
# differ (the spotter is tested on voices it was not tuned on); produced spots recur, so their announcers
# are shared, as a show's produced ads are from one episode to the next.
VOICES = {
    "train": ("en-us+m3", "en-us+f2", "en-us+m1"),
    "test": ("en-us+m7", "en-us+f4", "en-us+m2"),
    "holdout": ("en-gb+m3", "en-gb-x-rp+f3", "en-us-nyc+m5"),
}
ANNOUNCERS = {draw: ("en-us+m4", "en-us+f1", "en-us+m6") for draw in VOICES}
BRANDS = {
    "train": (
        "Fernwood Coffee",
        "Lumen Bank",
        "Brightline Shoes",
        "Harbor Mattress",
        "Pixel Print",
        "Green Basket",
    ),
    "test": ("Northstar Socks", "Cobalt Phone", "Maple Meals", "Atlas Travel", "River Books", "Summit Tea"),
    "holdout": (
        "Juniper Health",
        "Quill Notes",
        "Orbit Bikes",
        "Hearth Candles",
        "Tidal Audio",
        "Willow Pet",
    ),
}
# Ad copy: each draw has its own wording around the common sponsor language; {b} is the brand, {s} its slug.
AD_OPENINGS = {
    "train": (
        "This episode is brought to you by {b}.",
        "Support for this show comes from {b}.",
        "Today's show is sponsored by {b}.",
    ),
    "test": (
        "This podcast is brought to you by {b}.",
        "Support for this podcast comes from {b}.",
        "This episode is sponsored by {b}.",
    ),
    "holdout": (  # wording none of the built-in phrases was chosen on (the other draws' copy was)
        "Today's episode is supported by {b}.",
        "A quick thanks to {b} for making this show possible.",
        "{b} is sponsoring this week's episode.",
    ),
}
AD_MIDDLES = {
    "train": (
        "{b} roasts small batches every week and ships them right to your door.",
        "Thousands of listeners already trust {b} every single day.",
        "It takes five minutes to get started, and you can cancel any time.",
        "I have been using {b} for a year now and I honestly love it.",
    ),
    "test": (
        "{b} is made by a small team who care about every detail.",
        "Their customers keep coming back, and once you try it you will see why.",
        "Setting it up is quick and the whole family can share it.",
        "My own family switched to {b} last spring and we never looked back.",
    ),
    "holdout": (
        "With {b} you get everything you need in one simple app.",
        "I asked the team at {b} to tell you about their new plan.",
        "It costs less than a coffee a week, and it really works.",
        "People keep telling me how much {b} changed their mornings.",
    ),
}
AD_OFFERS = {
    "train": (
        "Go to {s} dot com slash show and use code listen for twenty percent off.",
        "Start your free trial today at {s} dot com slash podcast. Terms apply.",
        "Use promo code radio at checkout for fifteen percent off your first order.",
    ),
    "test": (
        "Visit {s} dot com slash show and use code friends for thirty percent off.",
        "Get a free trial at {s} dot com slash podcast today. Terms apply.",
        "Enter promo code weekly for ten percent off your first order.",
    ),
    "holdout": (
        "Head to {s} dot com and save twenty dollars on your first box.",
        "Try it free for a month at {s} dot com slash radio.",
        "Listeners get a special discount with the code listen at checkout.",
    ),
}
_CLOSINGS = (
    "And now, back to the show.",
    "Now, back to the show.",
    "Thanks to {b} for supporting the show.",
)
AD_CLOSINGS = {
    "train": _CLOSINGS,
    "test": _CLOSINGS,
    "holdout": ("That's {s} dot com.", "Okay, on with the episode.", "Our thanks to {b}."),
}
_LEAD_INS = ("And now a word from our sponsor.", "Let's take a quick break for our sponsor.")
LEAD_INS = {
    "train": _LEAD_INS,
    "test": _LEAD_INS,
    "holdout": ("Let's pause for a moment.", "Before we go on, a short break."),
}

# Content: the host talking, sentences built from parts (the same parts in both draws: content is content).
_SUBJECTS = (
    "My neighbour",
    "A listener from Ohio",
    "The old engineer",
    "Our producer",
    "My grandmother",
    "A friend of mine",
    "The city council",
    "One of the guests",
    "The park ranger",
    "A student",
)
_VERBS = (
    "told me about",
    "wrote to us about",
    "spent a whole summer on",
    "kept talking about",
    "found a book about",
    "remembered",
    "was worried about",
    "laughed about",
    "asked a question about",
    "took pictures of",
)
_OBJECTS = (
    "the stone bridge near the market",
    "the storm last winter",
    "an old fishing boat",
    "the history of the railway",
    "a garden full of tomatoes",
    "the first radio in town",
    "the long walk up the hill",
    "a broken clock",
    "the river when it flooded",
    "the lighthouse on the coast",
)
_TAILS = (
    "and it was a lovely story.",
    "which surprised everyone.",
    "and we talked about it for an hour.",
    "so we looked into it.",
    "and I still think about it.",
    "and nobody believed it at first.",
)
_ASIDES = (
    "Anyway, let's get back to it.",
    "That reminds me of something.",
    "I think that is a really good point.",
    "We will come back to that later.",
    "Let me read the next question.",
    "So that was the week.",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str, sample_rate: int, speed: int = 160) -> np.ndarray:
    """``text`` read by espeak-ng ``voice``, mono float32 at ``sample_rate``."""
    import soxr

    if not espeak_available():
        raise AdcutError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=False
    )
    if result.returncode != 0 or not result.stdout:
        raise AdcutError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()[:200]}")
    with wave.open(io.BytesIO(result.stdout)) as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    return soxr.resample(data, rate, sample_rate).astype(np.float32) if rate != sample_rate else data


def content_text(rng: np.random.Generator, sentences: int, mention: str | None = None) -> str:
    parts = []
    for _ in range(sentences):
        if rng.random() < 0.2:
            parts.append(str(rng.choice(_ASIDES)))
        else:
            parts.append(
                f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}, {rng.choice(_TAILS)}"
            )
    if mention:
        parts.insert(int(rng.integers(0, len(parts) + 1)), mention)
    return " ".join(parts)


def ad_text(rng: np.random.Generator, draw: str, brand: str | None = None) -> str:
    brand = brand or str(rng.choice(BRANDS[draw]))
    slug = brand.split()[0].lower()
    middles = rng.choice(AD_MIDDLES[draw], size=2, replace=False)
    parts = [
        rng.choice(AD_OPENINGS[draw]),
        *middles,
        rng.choice(AD_OFFERS[draw]),
        rng.choice(AD_CLOSINGS[draw]),
    ]
    return " ".join(str(p) for p in parts).replace("{b}", brand).replace("{s}", slug)


@dataclass
class HostReadEpisode:
    audio: np.ndarray
    sample_rate: int
    segments: list[Segment]  # ad / content tiling
    kinds: list[str] = field(default_factory=list)  # per ad: "host" or "produced"
    texts: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) of every part, in order

    @property
    def duration(self) -> Seconds:
        return len(self.audio) / self.sample_rate


def hostread_episode(
    seed: int,
    *,
    draw: str = "train",
    ads: int = 2,
    host_share: float = 0.5,
    content_sentences: tuple[int, int] = (12, 20),
    sample_rate: int = 16000,
    lead_in: float = 0.5,
    mention: str | None = None,
) -> HostReadEpisode:
    """Content, then ``ads`` breaks each followed by content; about ``host_share`` of the ads host-read.

    ``mention``: a sentence the host says once inside the content (a product name in passing).
    """
    if draw not in VOICES:
        raise AdcutError(f"draw must be one of {', '.join(VOICES)}")
    rng = np.random.default_rng(seed)
    voices = VOICES[draw]
    host = str(voices[int(rng.integers(len(voices)))])
    announcer = str(rng.choice(ANNOUNCERS[draw]))
    speed = int(rng.integers(150, 175))
    n_host = int(round(ads * host_share))
    kinds = ["host"] * n_host + ["produced"] * (ads - n_host)
    rng.shuffle(kinds)
    pieces: list[np.ndarray] = []
    labels: list[tuple[float, float]] = []
    texts: list[tuple[str, str]] = []
    cursor = 0

    def pause(seconds: float) -> None:
        nonlocal cursor
        n = int(seconds * sample_rate)
        pieces.append(np.zeros(n, np.float32))
        cursor += n

    def add(audio: np.ndarray) -> tuple[float, float]:
        nonlocal cursor
        start = cursor
        pieces.append(audio)
        cursor += len(audio)
        return start / sample_rate, cursor / sample_rate

    mention_at = int(rng.integers(0, ads + 1)) if mention else -1
    for block in range(ads + 1):
        text = content_text(
            rng, int(rng.integers(*content_sentences)), mention if block == mention_at else None
        )
        texts.append(("content", text))
        add(0.3 * _norm(speak(text, host, sample_rate, speed)))
        if block == ads:
            break
        pause(float(rng.uniform(0.4, 0.8)))
        copy = ad_text(rng, draw)
        if kinds[block] == "host":
            if rng.random() < lead_in:
                copy = f"{rng.choice(LEAD_INS[draw])} {copy}"
            texts.append(("host", copy))
            labels.append(add(0.3 * _norm(speak(copy, host, sample_rate, speed))))
        else:
            texts.append(("produced", copy))
            voice = _norm(speak(copy, announcer, sample_rate, speed + 15))
            labels.append(add(0.4 * voice + 0.15 * music_bed(len(voice), sample_rate, rng)))
        pause(float(rng.uniform(0.4, 0.8)))
    audio = np.concatenate(pieces)
    audio = audio + 0.002 * rng.standard_normal(len(audio)).astype(np.float32)
    duration = len(audio) / sample_rate
    truth = fill_background([Segment(round(a, 3), round(b, 3), "ad") for a, b in labels], duration, "content")
    return HostReadEpisode(np.clip(audio, -1, 1).astype(np.float32), sample_rate, truth, kinds, texts)


def write_hostread_episode(path, seed: int, **options) -> HostReadEpisode:
    """``hostread_episode`` encoded to ``path`` with its ads as an Audacity label file beside it."""
    from pathlib import Path

    from adcut.formats.labels import format_audacity
    from adcut.media.encode import write_audio

    episode = hostread_episode(seed, **options)
    write_audio(path, episode.audio, episode.sample_rate)
    Path(path).with_suffix(".txt").write_text(format_audacity(episode.segments, only=("ad",)))
    return episode


def _norm(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x * x)) + 1e-9) * 0.25).astype(np.float32)
