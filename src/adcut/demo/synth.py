"""Synthetic "episodes" with known ad breaks, for the demo, the tests and the benchmarks.

Content is speech-like: noise through moving formant filters, chopped into syllables with short
pauses. Ads are speech-like too, but over a music bed (a chord with a steady beat), louder and
brighter, as radio and podcast ads usually are. Every ad break begins and ends with a short
pause, as real ones mostly do, so boundary refinement has something to find.

``hard_spec`` draws harder episodes (issue 13): most changes have no pause; the show's theme
music (content) follows a pre-roll and precedes a post-roll; ads may open with a music-only
jingle, be read by the host over a bed, and be loudness-matched to the show; soft music lies
under parts of the show; a music bed may run on under the first words after an ad. Voices and
music are drawn per episode from the ``draw``'s own parameter stream (``"train"`` and ``"test"``
never share one), and real recordings from ``shared/data`` are mixed in where present (split
by draw too). Each such episode is of a show of its own; given a ``Show`` (``draw_show``), the
episodes are of one show, with its host, guest, theme and talk music, as a user's labelled
episodes and the new ones are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from adcut.core.segments import Segment, fill_background
from adcut.core.units import Seconds
from adcut.formats.labels import format_audacity


@dataclass(frozen=True)
class Piece:
    """One stretch of a hard episode: what sounds there (``KINDS``), and whether a pause precedes it."""

    start: Seconds
    end: Seconds
    kind: str
    voice: int = -1  # index into HardParts.voices (-1: no voice)
    music: int = -1  # index into HardParts.musics (-1: no music)
    pause_before: Seconds = 0.0  # 0: the previous piece runs straight into this one
    tail: Seconds = 0.0  # the previous piece's music runs on this long under this piece's start


# talk: a voice alone; talk_music: a voice over soft show music; theme: the show's music alone
# (content); jingle: an ad's music alone; ad: a voice over an ad bed.
KINDS = ("talk", "talk_music", "theme", "jingle", "ad")
AD_KINDS = ("jingle", "ad")
# A hard episode's voices: 0 the host, 1 the guest, HOST_READING the host reading an ad script, then the ads' own.
HOST_READING = 2


@dataclass(frozen=True)
class Voice:
    formants: tuple[float, float, float]
    pitch: float
    rate: float  # syllables per second
    pause_fraction: float  # share of 0.5 s blocks that are silent
    recording: str = ""  # a real recording to take the voice from instead (path)


@dataclass(frozen=True)
class Music:
    root: float
    chord: tuple[float, ...]
    weights: tuple[float, ...]  # of the first harmonics
    beat_hz: float
    beat_depth: float
    note_seconds: float  # 0: a sustained chord; else the chord moves every note_seconds (a melody)
    recording: str = ""


@dataclass(frozen=True)
class HardParts:
    voices: tuple[Voice, ...]
    musics: tuple[Music, ...]
    pieces: tuple[Piece, ...]
    levels: tuple[float, ...]  # RMS of each piece


@dataclass(frozen=True)
class EpisodeSpec:
    duration: Seconds
    ads: tuple[tuple[Seconds, Seconds], ...]  # (start, end) of each ad break
    hard: HardParts | None = None  # None: the easy episode of render_episode


def speech_like(n: int, sample_rate: int, rng: np.random.Generator, *, brightness: float = 1.0) -> np.ndarray:
    """Noise shaped by a few drifting formants and a 3-6 Hz syllable envelope with pauses."""
    t = np.arange(n) / sample_rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    shape = np.zeros_like(freqs)
    for centre, width in ((500, 150), (1500, 250), (2500 * brightness, 400)):
        centre = min(centre * rng.uniform(0.85, 1.15), sample_rate / 2 * 0.9)
        shape += np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    voiced = np.fft.irfft(spectrum * shape, n)
    # A pitch-like buzz makes it more speech than hiss.
    pitch = rng.uniform(100, 180)
    voiced += 0.3 * np.sign(np.sin(2 * np.pi * pitch * t)) * np.std(voiced)
    rate = rng.uniform(3.0, 6.0)
    envelope = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28)), 0, None) ** 0.5
    # Pauses: ~20% of 0.5 s blocks are silent.
    blocks = rng.random(int(np.ceil(n / (sample_rate * 0.5)))) > 0.2
    gate = np.repeat(blocks, int(sample_rate * 0.5))[:n]
    signal = voiced * envelope * gate
    return (signal / (np.std(signal) + 1e-9)).astype(np.float32)


def music_bed(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A sustained chord with harmonics and a 2 Hz beat: tonal and rhythmic where speech is not."""
    t = np.arange(n) / sample_rate
    root = rng.choice([110.0, 130.8, 146.8, 164.8])
    out = np.zeros(n)
    for ratio in (1.0, 1.25, 1.5, 2.0):
        for harmonic, weight in ((1, 1.0), (2, 0.5), (3, 0.25)):
            freq = root * ratio * harmonic
            if freq < sample_rate / 2:
                out += weight * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28))
    beat = 0.6 + 0.4 * (np.sin(2 * np.pi * 2.0 * t) > 0.7)
    out *= beat
    return (out / (np.std(out) + 1e-9)).astype(np.float32)


def render_episode(
    spec: EpisodeSpec, sample_rate: int, seed: int = 0, pause_seconds: Seconds = 0.4
) -> np.ndarray:
    """Mono float32 audio for ``spec``: content everywhere, ads over a music bed inside ``spec.ads``."""
    if spec.hard is not None:
        return render_hard(spec, sample_rate, seed)
    rng = np.random.default_rng(seed)
    n = int(round(spec.duration * sample_rate))
    audio = 0.08 * speech_like(n, sample_rate, rng)
    for start, end in spec.ads:
        a, b = int(start * sample_rate), min(n, int(end * sample_rate))
        length = b - a
        ad = 0.12 * speech_like(length, sample_rate, rng, brightness=1.3) + 0.07 * music_bed(
            length, sample_rate, rng
        )
        audio[a:b] = ad
        # A short pause on each side of the break.
        gap = int(pause_seconds * sample_rate)
        audio[max(0, a - gap // 2) : a + gap // 2] *= 0.02
        audio[max(0, b - gap // 2) : b + gap // 2] *= 0.02
    audio += 0.002 * rng.standard_normal(n).astype(np.float32)  # room noise: never digital silence
    return np.clip(audio, -1, 1).astype(np.float32)


def episode_segments(spec: EpisodeSpec, classes: Sequence[str] = ("ad", "content")) -> list[Segment]:
    """The true labels of ``spec``, tiling the episode."""
    ads = [Segment(start, min(end, spec.duration), classes[0]) for start, end in spec.ads]
    return fill_background(ads, spec.duration, classes[1])


def random_spec(
    duration: Seconds, rng: np.random.Generator, *, ad_range=(15.0, 60.0), content_range=(30.0, 120.0)
) -> EpisodeSpec:
    """An episode starting with content, with ad breaks of random length at random gaps."""
    ads = []
    cursor = rng.uniform(*content_range)
    while cursor + ad_range[0] < duration - content_range[0] / 2:
        length = rng.uniform(*ad_range)
        end = min(cursor + length, duration)
        ads.append((round(cursor, 2), round(end, 2)))
        cursor = end + rng.uniform(*content_range)
    return EpisodeSpec(duration, tuple(ads))


def write_episode(
    path, spec: EpisodeSpec, *, sample_rate: int = 16000, seed: int = 0, bit_rate: int | None = None
) -> np.ndarray:
    """Render ``spec`` and encode it to ``path`` (format by suffix); returns the samples."""
    from adcut.media.encode import write_audio

    samples = render_episode(spec, sample_rate, seed)
    write_audio(path, samples, sample_rate, bit_rate=bit_rate)
    return samples


def write_labelled_episode(
    path, spec: EpisodeSpec, *, sample_rate: int = 16000, seed: int = 0, bit_rate: int | None = None
) -> list[Segment]:
    """``write_episode``, plus the ads as an Audacity label file beside it (``path`` with ``.txt``); the true segments."""
    from pathlib import Path

    write_episode(path, spec, sample_rate=sample_rate, seed=seed, bit_rate=bit_rate)
    truth = episode_segments(spec)
    Path(path).with_suffix(".txt").write_text(format_audacity(truth, only=("ad",)))
    return truth


def write_long_mp3(
    path,
    spec: EpisodeSpec,
    *,
    sample_rate: int = 44100,
    channels: int = 2,
    bit_rate: int = 128_000,
    seed: int = 0,
) -> None:
    """Encode a long episode (hours) to MP3 minute by minute, so it never sits in memory whole.

    Each minute is rendered at 16 kHz (the synth's FFTs would dominate otherwise) and resampled
    to ``sample_rate``. LAME's fastest mode: benchmarks need the file, not its finest quality.
    """
    import av
    import soxr

    from adcut.media.encode import StreamEncoder, open_audio_stream

    render_rate = 16000
    container = av.open(str(path), mode="w", format="mp3")
    try:
        layout = "mono" if channels == 1 else "stereo"
        stream = open_audio_stream(
            container, "libmp3lame", sample_rate, layout, bit_rate, options={"compression_level": "9"}
        )
        encoder = StreamEncoder(container, stream, "fltp", layout, sample_rate)
        for minute in range(int(np.ceil(spec.duration / 60.0))):
            start, end = minute * 60.0, min(minute * 60.0 + 60.0, spec.duration)
            ads = tuple(
                (max(a, start) - start, min(b, end) - start) for a, b in spec.ads if a < end and b > start
            )
            mono = render_episode(EpisodeSpec(end - start, ads), render_rate, seed=seed + minute)
            if sample_rate != render_rate:
                mono = soxr.resample(mono, render_rate, sample_rate).astype(np.float32)
            encoder.push(np.tile(mono, (channels, 1)))
        encoder.finish()
    finally:
        container.close()


# --------------------------------------------------------------------------- harder episodes (issue 13)

_SCALE = (1.0, 9 / 8, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 2.0)


def _recording(path: str, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of a real recording from a random point, looped if it is shorter, at unit RMS."""
    whole = _decoded(path, sample_rate)
    if len(whole) == 0:
        return np.zeros(n, np.float32)
    offset = int(rng.integers(0, len(whole)))
    reps = int(np.ceil((n + offset) / len(whole)))
    out = np.tile(whole, reps)[offset : offset + n]
    return (out / (np.sqrt(np.mean(out**2)) + 1e-9)).astype(np.float32)


_DECODED: dict[tuple[str, int], np.ndarray] = {}


def _decoded(path: str, sample_rate: int) -> np.ndarray:
    key = (path, sample_rate)
    if key not in _DECODED:
        from pathlib import Path

        from adcut.media.decode import decode

        _DECODED[key] = decode(Path(path), sample_rate)
    return _DECODED[key]


def voice_audio(n: int, sample_rate: int, rng: np.random.Generator, voice: Voice) -> np.ndarray:
    """Speech-like audio in ``voice`` (unit RMS): formant-shaped noise, a drifting pitch buzz, syllables, pauses."""
    if voice.recording:
        return _recording(voice.recording, n, sample_rate, rng)
    t = np.arange(n) / sample_rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    shape = np.zeros_like(freqs)
    for centre, width in zip(voice.formants, (150, 250, 400)):
        shape += np.exp(-0.5 * ((freqs - min(centre, sample_rate * 0.45)) / width) ** 2)
    voiced = np.fft.irfft(spectrum * shape, n)
    pitch = voice.pitch * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced += 0.3 * np.sign(np.sin(phase)) * np.std(voiced)
    envelope = np.clip(np.sin(2 * np.pi * voice.rate * t + rng.uniform(0, 6.28)), 0, None) ** 0.5
    blocks = rng.random(int(np.ceil(n / (sample_rate * 0.5)))) > voice.pause_fraction
    gate = np.repeat(blocks, int(sample_rate * 0.5))[:n]
    signal = voiced * envelope * gate
    return (signal / (np.std(signal) + 1e-9)).astype(np.float32)


def music_audio(n: int, sample_rate: int, rng: np.random.Generator, music: Music) -> np.ndarray:
    """Tonal, rhythmic audio (unit RMS): a chord, held or moving every ``note_seconds``, with a beat."""
    if music.recording:
        return _recording(music.recording, n, sample_rate, rng)
    t = np.arange(n) / sample_rate
    root = np.full(n, music.root)
    if music.note_seconds > 0:
        per_note = max(1, int(music.note_seconds * sample_rate))
        notes = rng.choice(_SCALE, size=int(np.ceil(n / per_note)))
        root = music.root * np.repeat(notes, per_note)[:n]
    phase = 2 * np.pi * np.cumsum(root) / sample_rate
    out = np.zeros(n)
    for ratio in music.chord:
        for harmonic, weight in enumerate(music.weights, start=1):
            if music.root * 2 * ratio * harmonic < sample_rate / 2:
                out += weight * np.sin(phase * ratio * harmonic + rng.uniform(0, 6.28))
    beat = (1 - music.beat_depth) + music.beat_depth * (np.sin(2 * np.pi * music.beat_hz * t) > 0.7)
    out *= beat
    return (out / (np.std(out) + 1e-9)).astype(np.float32)


# How loud the music is beside the voice in each kind of piece (the voice is at 1).
_MUSIC_UNDER = {"talk_music": 0.25, "ad": 0.9}


def render_hard(spec: EpisodeSpec, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Mono float32 audio of a ``hard_spec`` episode."""
    parts = spec.hard
    assert parts is not None
    rng = np.random.default_rng(seed)
    n = int(round(spec.duration * sample_rate))
    audio = np.zeros(n, np.float32)
    previous: Piece | None = None
    previous_level = 0.0
    for piece, level in zip(parts.pieces, parts.levels):
        a, b = int(piece.start * sample_rate), min(n, int(piece.end * sample_rate))
        if b <= a:
            continue
        length = b - a
        voice = voice_audio(length, sample_rate, rng, parts.voices[piece.voice]) if piece.voice >= 0 else None
        music = music_audio(length, sample_rate, rng, parts.musics[piece.music]) if piece.music >= 0 else None
        x = np.zeros(length, np.float32)
        if voice is not None:
            x += voice
        if music is not None:
            x += (_MUSIC_UNDER.get(piece.kind, 0.5) if voice is not None else 1.0) * music
        audio[a:b] = x / (np.sqrt(np.mean(x**2)) + 1e-9) * level
        if piece.pause_before > 0:
            gap = int(piece.pause_before * sample_rate)
            audio[max(0, a - gap // 2) : a + gap // 2] *= 0.02
        elif piece.tail > 0 and previous is not None and previous.music >= 0:
            # the ad's bed runs on, fading, under the first words after it
            m = min(length, int(piece.tail * sample_rate))
            bed = music_audio(m, sample_rate, rng, parts.musics[previous.music])
            audio[a : a + m] += 0.5 * previous_level * bed * np.linspace(1.0, 0.0, m, dtype=np.float32)
        previous, previous_level = piece, level
    audio += 0.002 * rng.standard_normal(n).astype(np.float32)
    return np.clip(audio, -1, 1).astype(np.float32)


def find_shared_data(start=None):
    """The ``shared/data`` folder of real recordings beside this checkout (or ``$ADCUT_SHARED_DATA``), else None."""
    import os
    from pathlib import Path

    env = os.environ.get("ADCUT_SHARED_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for base in [Path(start or Path.cwd()).resolve(), Path(__file__).resolve()]:
        for parent in [base, *base.parents]:
            if (parent / "shared" / "data").is_dir():
                return parent / "shared" / "data"
    return None


def shared_recordings(folder, draw: str) -> dict[str, list[str]]:
    """Real speech and music files from ``folder`` (``find_shared_data``) for ``draw``: train and test get
    different files (alternate ones, sorted by name), so no real voice or music is in both."""
    from pathlib import Path

    if folder is None or not Path(folder).is_dir():
        return {"speech": [], "music": []}
    pick = 0 if draw == "train" else 1
    out = {}
    for kind, minimum in (("speech", 10.0), ("music", 30.0)):
        files = sorted(p for p in (Path(folder) / kind).glob("*") if p.suffix in (".ogg", ".wav"))
        files = [p for p in files if _long_enough(p, minimum)]
        out[kind] = [str(p) for p in files[pick::2]]
    return out


def _long_enough(path, seconds: float) -> bool:
    from adcut.media.decode import probe

    try:
        duration = probe(path).duration
        return duration is not None and duration >= seconds
    except Exception:  # noqa: BLE001 - an unreadable file is simply not used
        return False


def _draw_voice(rng: np.random.Generator, *, ad: bool) -> Voice:
    return Voice(
        formants=(rng.uniform(350, 750), rng.uniform(1100, 1900), rng.uniform(2200, 3000)),
        pitch=rng.uniform(85, 230),
        rate=rng.uniform(4.0, 6.5) if ad else rng.uniform(3.0, 6.0),
        pause_fraction=rng.uniform(0.0, 0.08) if ad else rng.uniform(0.15, 0.3),
    )


def _draw_music(rng: np.random.Generator, *, role: str) -> Music:
    beat = {
        "pad": (0.5, 1.0, 0.0, 0.1),
        "theme": (1.5, 3.0, 0.3, 0.5),
        "bed": (1.5, 3.0, 0.2, 0.6),
        "jingle": (2.0, 4.0, 0.4, 0.6),
    }[role]
    notes = {
        "pad": 0.0,
        "theme": rng.uniform(0.2, 0.5),
        "bed": rng.choice([0.0, rng.uniform(0.3, 0.8)]),
        "jingle": rng.uniform(0.12, 0.3),
    }[role]
    chords = ((1.0, 1.25, 1.5), (1.0, 1.2, 1.5), (1.0, 1.25, 1.5, 2.0), (1.0, 1.5, 2.0))
    return Music(
        root=float(rng.choice([98.0, 110.0, 130.8, 146.8, 164.8, 196.0])),
        chord=chords[int(rng.integers(len(chords)))],
        weights=tuple(float(w) for w in rng.uniform(0.1, 1.0, 3) * np.array([1.0, 0.6, 0.35])),
        beat_hz=rng.uniform(beat[0], beat[1]),
        beat_depth=rng.uniform(beat[2], beat[3]),
        note_seconds=float(notes),
    )


@dataclass(frozen=True)
class Show:
    """What makes a show sound like itself from one episode to the next: its host, its guest, its
    theme and the music under its talk."""

    host: Voice
    guest: Voice
    theme: Music
    pad: Music


def draw_show(rng: np.random.Generator, recordings: dict[str, list[str]] | None = None) -> Show:
    """A show's voices and music; with ``recordings``, its guest or theme is sometimes a real recording."""
    recordings = recordings or {"speech": [], "music": []}
    host, guest = _draw_voice(rng, ad=False), _draw_voice(rng, ad=False)
    theme, pad = _draw_music(rng, role="theme"), _draw_music(rng, role="pad")
    if recordings.get("speech") and rng.random() < 0.5:
        guest = replace(guest, recording=str(rng.choice(recordings["speech"])))
    if recordings.get("music") and rng.random() < 0.4:
        theme = replace(theme, recording=str(rng.choice(recordings["music"])))
    return Show(host, guest, theme, pad)


def hard_spec(
    duration: Seconds,
    rng: np.random.Generator,
    *,
    recordings: dict[str, list[str]] | None = None,
    show: Show | None = None,
    pause_probability: float = 0.25,
    ad_range=(15.0, 45.0),
    content_range=(40.0, 150.0),
) -> EpisodeSpec:
    """A harder episode (see the module docstring): pre-roll, theme, talk with mid-roll breaks, theme, post-roll.

    ``rng`` draws everything, voices and music included: give train and test draws their own
    seeds. ``recordings`` (``shared_recordings``) are real files to use for some voices and music.
    ``show``: the show's own voices and music (an episode of that show; its ads are still drawn
    here); None: a show of its own, drawn with the rest.
    """
    recordings = recordings or {"speech": [], "music": []}
    show = show or draw_show(rng, recordings)
    voices: list[Voice] = [show.host, show.guest]
    musics: list[Music] = [show.theme, show.pad]
    host_reading = replace(
        voices[0], rate=min(6.5, voices[0].rate * 1.15), pause_fraction=voices[0].pause_fraction * 0.4
    )
    voices.append(host_reading)  # index HOST_READING
    show_level = 0.08 * rng.uniform(0.8, 1.25)
    pieces: list[tuple[str, float, int, int, float]] = []  # kind, length, voice, music, level

    def ad_break(length: float) -> None:
        if rng.random() < 0.4:  # a music-only jingle first
            musics.append(_draw_music(rng, role="jingle"))
            jingle = rng.uniform(2.0, 4.0)
            pieces.append(("jingle", jingle, -1, len(musics) - 1, 0.0))
            length -= jingle
        if rng.random() < 0.3:
            voice = HOST_READING
        elif recordings.get("speech") and rng.random() < 0.25:
            voices.append(replace(_draw_voice(rng, ad=True), recording=str(rng.choice(recordings["speech"]))))
            voice = len(voices) - 1
        else:
            voices.append(_draw_voice(rng, ad=True))
            voice = len(voices) - 1
        bed = _draw_music(rng, role="bed")
        if recordings.get("music") and rng.random() < 0.3:
            bed = replace(bed, recording=str(rng.choice(recordings["music"])))
        musics.append(bed)
        # loudness-matched (dynamically inserted) most of the time, else mastered louder
        gain = rng.uniform(-1.0, 1.0) if rng.random() < 0.6 else rng.uniform(2.0, 5.0)
        level = show_level * 10 ** (gain / 20)
        pieces[-1:] = [
            (k, ln, v, m, level if k == "jingle" and lv == 0.0 else lv) for k, ln, v, m, lv in pieces[-1:]
        ]
        pieces.append(("ad", length, voice, len(musics) - 1, level))

    def theme() -> None:
        pieces.append(
            ("theme", rng.uniform(6.0, 15.0), -1, 0, show_level * 10 ** (rng.uniform(-1.5, 1.5) / 20))
        )

    def talk(length: float) -> None:
        while length > 1.0:
            part = min(length, rng.uniform(15.0, 60.0))
            if length - part < 10.0:
                part = length
            with_music = rng.random() < 0.25
            voice = 0 if rng.random() < 0.7 else 1
            pieces.append(
                ("talk_music" if with_music else "talk", part, voice, 1 if with_music else -1, show_level)
            )
            length -= part

    if rng.random() < 0.75:
        ad_break(rng.uniform(*ad_range))
    theme()
    post = rng.uniform(*ad_range) if rng.random() < 0.7 else 0.0
    outro = rng.uniform(6.0, 12.0)
    used = sum(p[1] for p in pieces)
    middle = duration - used - outro - post
    cursor = 0.0
    while middle - cursor > 0:
        gap = rng.uniform(*content_range)
        if middle - cursor - gap < ad_range[0] + content_range[0] / 2:
            talk(middle - cursor)
            break
        talk(gap)
        length = rng.uniform(*ad_range)
        ad_break(length)
        cursor += gap + length
    pieces.append(("theme", outro, -1, 0, show_level))
    if post:
        ad_break(post)

    # Lay the pieces out (their lengths sum to about ``duration``; the last ends at ``duration``).
    laid: list[Piece] = []
    levels: list[float] = []
    t = 0.0
    for i, (kind, length, voice, music, level) in enumerate(pieces):
        end = duration if i == len(pieces) - 1 else min(duration, t + length)
        if end - t < 0.5:
            continue
        pause = 0.0 if i == 0 or rng.random() >= pause_probability else float(rng.uniform(0.2, 0.5))
        tail = 0.0
        if (
            not pause
            and laid
            and laid[-1].kind == "ad"
            and kind in ("talk", "talk_music")
            and rng.random() < 0.35
        ):
            tail = float(rng.uniform(0.5, 1.5))
        laid.append(Piece(round(t, 3), round(end, 3), kind, voice, music, pause, tail))
        levels.append(float(level))
        t = end
    ads: list[tuple[Seconds, Seconds]] = []
    for piece in laid:
        if piece.kind in AD_KINDS:
            if ads and abs(ads[-1][1] - piece.start) < 1e-9:
                ads[-1] = (ads[-1][0], piece.end)
            else:
                ads.append((piece.start, piece.end))
    return EpisodeSpec(
        duration, tuple(ads), HardParts(tuple(voices), tuple(musics), tuple(laid), tuple(levels))
    )
