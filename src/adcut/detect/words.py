"""Word evidence: sponsor phrases heard in the speech the sound model calls content, fused before the HMM.

A host-read ad has no sound of its own, so its extent comes from its words: its core is a cluster
of at least two distinct STRONG sponsor phrases (hits no more than ``max_gap`` apart); a weak, short
phrase ("use code", which the spotter also mishears in talk) only joins an ad when it is heard within
``weak_gap`` seconds of a strong hit, so it can never stretch an ad into the talk beside it. The ad
runs from the sentence break (a pause) before its first phrase to the one after its last phrase, or
to the end of a return cue ("back to the show") heard within ``return_gap`` s of it, a hard end.
A return cue alone, or one product name said in passing, is not an ad. Inside such a stretch the ad probability of the curve the HMM
reads is raised to ``ad_probability``; everywhere else the curve is the sound model's, so produced
spots keep its precision and content that says no sponsor phrase is untouched.

Recognition scans only the stretches that the sound model's first smoothing calls content
(where a word can change the answer), in ``workers`` processes, on the 16 kHz audio that the sound
model's own decode made on the way (``detect`` passes it in): the file is decoded once. The close
search around what the scan heard may read on into the sound model's ads (it often hears the middle
of a read ad, and the phrases there join those on either side); a word ad must then add to the
sound model's ads and be confirmed by a strong phrase outside them.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.errors import AdcutError
from adcut.words.phrases import BUILTIN_ENGLISH, LEAD, RETURN, Phrase, merge_phrases, read_phrases

log = logging.getLogger(__name__)

WORDS_MODES = ("off", "auto", "on")


@dataclass(frozen=True)
class WordsConfig:
    """``adcut process --words``: whether and how sponsor phrases are listened for."""

    mode: str = "auto"  # off | auto (on when pocketsphinx is installed and the model or --ad-phrases brings phrases) | on
    phrases_file: Path | None = None  # --ad-phrases: more phrases (one a line, optional TAB weight TAB role)
    model_dir: Path | None = None  # --speech-model: another pocketsphinx model folder (another language)
    # Keyword threshold exponents per phone (recognise.py; larger = more hits). The search hears with
    # ``per_phone``, and its hits make each ad's extent (a lead-in, the return cue); an ad is kept only
    # when a stricter search of its span, with ``confirm_per_phone``, also hears ``min_strong``
    # distinct strong phrases in it. Measured with the built-in phrases on the hard generated set
    # (1 h with real speech and music mixed in, no sponsor copy): searching at 5.0 alone made 74 s
    # of word ads outside the ads, at 4.0 33 s, at 3.5 none; all 20 host-read ads of 10 unseen
    # espeak-ng episodes were found at 3.5 and 3.0, but with fewer of their phrases (shorter ads).
    per_phone: float = 5.0
    confirm_per_phone: float = 3.5
    min_score: float = (
        1.6  # summed weight of the distinct phrases (strong and the weak beside them) that makes an ad
    )
    max_gap: float = 20.0  # seconds between hits of one ad
    max_ad_seconds: float = (
        120.0  # a core of phrases spread wider is not one read ad (phrases firing in talk)
    )
    strong_weight: float = 0.8  # phrases at least this heavy make an ad's core; lighter ones only join one
    min_strong: int = 2  # distinct strong phrases an ad's core needs
    confirm_phases: int = 4  # frame phases the confirmation reads each ad at (recognition is phase-sensitive)
    weak_gap: float = 4.0  # seconds from a strong hit within which a weak phrase joins its ad
    return_gap: float = 10.0  # a return cue ends the ad when heard this soon after its last strong phrase
    sentence_back: float = 15.0  # how far before the first phrase its sentence break is looked for
    sentence_forward: float = 8.0  # ... and after the last
    ad_probability: float = 0.97  # the ad probability inside a heard ad
    workers: int | None = None  # recognition processes (None: the cores)
    scan: bool = True  # a cheap scan of everything, the full search only around what it hears (recognise.py)
    learned: bool = (
        True  # also the phrases the checkpoint learned from its labels (False: built-in and --ad-phrases)
    )

    def __post_init__(self) -> None:
        if self.mode not in WORDS_MODES:
            raise AdcutError(f"--words must be one of {', '.join(WORDS_MODES)}, not {self.mode!r}")

    def settings(self) -> dict:
        return {
            "words": self.mode,
            "ad_phrases": str(self.phrases_file) if self.phrases_file else None,
            "speech_model": str(self.model_dir) if self.model_dir else None,
            "words_search": "scan" if self.scan else "full",
        }


def checkpoint_phrases(checkpoint) -> list[Phrase]:
    """The phrases learned from the labels of the checkpoint's dataset (``training["phrases"]``)."""
    stored = (getattr(checkpoint, "training", None) or {}).get("phrases") or []
    return [Phrase.from_dict(p) for p in stored if isinstance(p, dict) and p.get("text")]


def resolve_phrases(checkpoint, config: WordsConfig) -> tuple[Phrase, ...]:
    """The checkpoint's learned phrases, the built-in English ones (only with the built-in English model), the user's.

    A later group's entry for the same words wins: a learned phrase never overrides a built-in one (a
    learner that heard "percent off" in few of its ads would weaken a phrase every read ad says), and
    the user's file overrides both."""
    builtin = BUILTIN_ENGLISH if config.model_dir is None else ()
    user = read_phrases(config.phrases_file) if config.phrases_file else ()
    return merge_phrases(checkpoint_phrases(checkpoint) if config.learned else (), builtin, user)


def words_enabled(checkpoint, config: WordsConfig | None) -> bool:
    """``on``: always (a missing pocketsphinx is an error); ``auto``: when pocketsphinx is installed and the
    checkpoint carries learned phrases or the user gave some; ``off``: never."""
    from adcut.words.recognise import pocketsphinx_available, require_pocketsphinx

    if config is None or config.mode == "off":
        return False
    if config.mode == "on":
        require_pocketsphinx()
        return True
    # Phrases first: without any (most models), auto does not even import the recogniser.
    return bool(checkpoint_phrases(checkpoint) or config.phrases_file) and pocketsphinx_available()


def content_stretches(segments, background: str, min_seconds: float = 3.0) -> list[tuple[float, float]]:
    """Where the first smoothing says ``background``: (start, end) of each stretch at least ``min_seconds`` long."""
    return [
        (float(s.start), float(s.end))
        for s in segments
        if s.label == background and s.duration >= min_seconds
    ]


def strong_phrases(phrases, config: WordsConfig) -> set[str]:
    """The phrases that can make a read ad's core: at least ``strong_weight`` heavy, and not a return cue."""
    return {p.text for p in phrases if p.role != RETURN and p.weight >= config.strong_weight}


def word_ads(hits, phrases, pauses, duration: float, config: WordsConfig) -> list[dict]:
    """The ads the words make: ``{"start", "end", "score", "phrases"}`` per cluster of hits that weighs enough.

    The core of a read ad is a cluster of STRONG phrases (weight >= ``strong_weight``, not the return
    cue) at most ``max_gap`` apart, holding at least ``min_strong`` distinct phrases whose weights
    with the weak hits next to them sum to ``min_score``. A weak phrase ("use code": short, so
    sometimes misheard in talk) never makes or chains a cluster: it joins one only when it is within
    ``weak_gap`` seconds of one of its strong hits. The first return cue ("back to the show") within
    ``return_gap`` after the last strong hit ends the ad (at its own sentence's end), and the hits
    after it start a new one. The extent runs from the sentence break (pause) nearest before the first member to the one nearest
    after the last; a core spread over more than ``max_ad_seconds`` is phrases firing in talk, not one ad.
    """
    by_text = {p.text: p for p in phrases}
    hits = sorted((h for h in hits if h.phrase in by_text), key=lambda h: h.start)
    strong_texts = strong_phrases(phrases, config)

    def strong(hit) -> bool:
        return hit.phrase in strong_texts

    returns = [h for h in hits if by_text[h.phrase].role == RETURN]
    weak = [h for h in hits if by_text[h.phrase].role != RETURN and not strong(h)]
    clusters: list[list] = []
    for hit in (h for h in hits if strong(h)):
        current = clusters[-1] if clusters else None
        near = current is not None and hit.start - max(h.end for h in current) <= config.max_gap
        closed = current is not None and any(current[-1].end - 1.0 <= r.start <= hit.start for r in returns)
        lead_starts_new = (
            near
            and by_text[hit.phrase].role == LEAD
            and current is not None
            and any(by_text[h.phrase].role == LEAD for h in current)
            and hit.start - current[-1].end > 3.0
        )
        if near and not closed and not lead_starts_new:
            current.append(hit)  # type: ignore[union-attr]
        else:
            clusters.append([hit])
    pause_ends = np.array([b for _, b in pauses]) if pauses else np.zeros(0)
    pause_starts = np.array([a for a, _ in pauses]) if pauses else np.zeros(0)
    ads = []
    for core in clusters:
        first_strong, last_strong = core[0].start, max(h.end for h in core)
        members = list(core) + [
            h
            for h in weak
            if first_strong - config.weak_gap <= h.start
            and h.end <= last_strong + config.weak_gap
            and any(
                abs(h.start - c.start) <= config.weak_gap or abs(h.end - c.end) <= config.weak_gap
                for c in core
            )
        ]
        closing = [r for r in returns if last_strong - 1.0 <= r.start <= last_strong + config.return_gap]
        weights: dict[str, float] = {}
        for hit in members:
            weights[hit.phrase] = max(weights.get(hit.phrase, 0.0), by_text[hit.phrase].weight)
        score = sum(weights.values())
        if len({h.phrase for h in core}) < config.min_strong or score < config.min_score:
            continue
        first = min(h.start for h in members)
        last = closing[0].end if closing else max(h.end for h in members)
        if last - first > config.max_ad_seconds:
            log.info(
                "words: phrases heard over %.0f s from %.0f s on: longer than any read ad, not taken",
                last - first,
                first,
            )
            continue
        before = pause_ends[(pause_ends <= first + 0.05) & (pause_ends >= first - config.sentence_back)]
        forward = (
            1.5 if closing else config.sentence_forward
        )  # the return cue ends its own sentence, and the ad
        after = pause_starts[(pause_starts >= last - 0.05) & (pause_starts <= last + forward)]
        start = float(before.max()) if len(before) else max(0.0, first - 1.0)
        end = float(after.min()) if len(after) else min(duration, last + (0.3 if closing else 1.0))
        ads.append(
            {
                "start": round(start, 2),
                "end": round(end, 2),
                "score": round(score, 3),
                "phrases": sorted({h.phrase for h in members + closing[:1]}),
            }
        )
    return ads


def beyond_sound(ads: list[dict], sound_ads, min_seconds: float = 0.5) -> list[dict]:
    """The word ads that reach at least ``min_seconds`` past the ``sound_ads`` spans (what the sound model
    already calls an ad): the others would change nothing, and confirming them would cost a close reading each."""
    from adcut.core.segments import subtract_spans

    return [
        ad
        for ad in ads
        if sum(b - a for a, b in subtract_spans([(ad["start"], ad["end"])], sound_ads)) >= min_seconds
    ]


def evidence_curve(hits, phrases, duration: float) -> np.ndarray:
    """Per second: the summed weight of the phrases heard in it."""
    by_text = {p.text: p for p in phrases}
    curve = np.zeros(int(np.ceil(duration)), dtype=np.float32)
    for hit in hits:
        if hit.phrase in by_text and len(curve):
            curve[min(len(curve) - 1, int(hit.start))] += by_text[hit.phrase].weight
    return curve


def fuse(
    curve: np.ndarray, step_seconds: float, ads: list[dict], ad_index: int, ad_probability: float
) -> np.ndarray:
    """``curve`` with the ad class raised to at least ``ad_probability`` inside each word ad (rows still sum to 1)."""
    out = curve.copy()
    for ad in ads:
        lo, hi = int(ad["start"] / step_seconds), int(np.ceil(ad["end"] / step_seconds))
        rows = out[lo:hi]
        if not len(rows):
            continue
        raised = np.maximum(rows[:, ad_index], ad_probability)
        others = np.delete(np.arange(out.shape[1]), ad_index)
        rest = rows[:, others].sum(axis=1, keepdims=True)
        share = np.where(rest > 0, rows[:, others] / np.maximum(rest, 1e-12), 1.0 / max(1, len(others)))
        rows[:, others] = share * (1.0 - raised)[:, None]
        rows[:, ad_index] = raised
    return out


def overlay(segments, ads: list[dict], ad_label: str, duration: float, min_gap: float = 2.0):
    """``segments`` (a tiling) with every word ad made ``ad_label``: the sound model's segments stay as they
    were outside the word ads, so the words can add a read ad but never move or invent anything else.
    Content left shorter than ``min_gap`` between two ads joins them."""
    from adcut.core.segments import Segment, make_tiling, subtract_spans

    spans = sorted(
        [(float(s.start), float(s.end)) for s in segments if s.label == ad_label]
        + [(float(a["start"]), float(a["end"])) for a in ads]
    )
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1] + min_gap:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    for seg in segments:  # the other labels, cut around the ads
        if seg.label == ad_label:
            continue
        pieces = subtract_spans([(float(seg.start), float(seg.end))], merged)
        out += [Segment(lo, hi, seg.label) for lo, hi in pieces]
    out += [Segment(max(0.0, a), min(duration, b), ad_label) for a, b in merged]
    return make_tiling(sorted(out, key=lambda s: s.start), duration)


def confirmed(
    ads,
    audio,
    phrases,
    strong,
    config: WordsConfig,
    workers: int,
    cmn: str | None = None,
    sound_ads=(),
) -> tuple[list[dict], list[dict]]:
    """(kept, rejected) ``ads``: kept where a search with the stricter ``confirm_per_phone`` hears at least
    ``min_strong`` distinct strong phrases in the ad's span (a cluster of loose hits in talk or music is not),
    one of them outside the ``sound_ads`` spans: the copy of a produced spot the sound model found says
    sponsor phrases too, which alone would confirm an ad that a loose hit in the talk beside the spot
    stretched into that talk."""
    from adcut.core.segments import subtract_spans
    from adcut.words.recognise import Search, spot_stretches

    if not ads or config.confirm_per_phone >= config.per_phone:
        return ads, []
    spans = [(max(0.0, a["start"] - 1.0), a["end"] + 1.0) for a in ads]
    # What the search hears depends on where its 10 ms frames fall (a phrase heard at one phase is
    # missed at the next): an ad not confirmed yet is read again at the next of ``confirm_phases``
    # phases, and what any of them heard counts. Most ads are confirmed by the first reading.
    heard: list[set[str]] = [set() for _ in ads]
    outside = [False] * len(ads)
    sound_ads = list(sound_ads)

    def enough(i: int) -> bool:
        return len(heard[i]) >= config.min_strong and outside[i]

    phases = max(1, config.confirm_phases)
    step = Search(config.confirm_per_phone).frame_seconds / phases
    for k in range(phases):
        waiting = [i for i in range(len(ads)) if not enough(i)]
        if not waiting:
            break
        hits = spot_stretches(
            [(spans[i][0] + k * step, spans[i][1]) for i in waiting],
            audio,
            phrases,
            config.model_dir,
            config.confirm_per_phone,
            workers=workers,
            scan=None,
            cmn=cmn,
        ).hits
        for i in waiting:
            lo, hi = spans[i]
            found = [h for h in hits if lo <= h.start and h.end <= hi and h.phrase in strong]
            heard[i] |= {h.phrase for h in found}
            outside[i] = outside[i] or any(
                subtract_spans([(h.start, h.end)], sound_ads, min_seconds=0.25) for h in found
            )
    kept = [ad for i, ad in enumerate(ads) if enough(i)]
    rejected = [ad for i, ad in enumerate(ads) if not enough(i)]
    if rejected:
        log.info("words: %d word ads not confirmed by the stricter search", len(rejected))
    return kept, rejected


def hear_words(
    path,
    curve: np.ndarray,
    step_seconds: float,
    duration: float,
    segments,
    classes,
    checkpoint,
    config: WordsConfig,
    background: str | None = None,
    speech=None,
) -> tuple[np.ndarray, dict]:
    """Spot sponsor phrases in the content stretches of ``path``; the fused curve and a record for the outputs.

    ``speech``: the episode at 16 kHz already (``recognise.Tapped``, made by the sound model's decode);
    without it, ``path`` is decoded again here, while recognition starts on the first pieces."""
    from contextlib import nullcontext

    from adcut.media.decode import iter_blocks
    from adcut.words.recognise import SAMPLE_RATE, SCAN, Decoding, seconds_in, spot_stretches

    began = time.perf_counter()
    phrases = resolve_phrases(checkpoint, config)
    background = background or (classes[1] if len(classes) > 1 else classes[0])
    # Without the scan (--words-full) the whole episode is searched closely: the close search after a
    # scan may read into the sound model's ads too, and the slow way must hear at least what it hears.
    stretches = content_stretches(segments, background) if config.scan else [(0.0, duration)]
    workers = config.workers or os.cpu_count() or 1
    strong = strong_phrases(phrases, config)
    with (
        nullcontext(speech)
        if speech is not None
        else Decoding(iter_blocks(Path(path), SAMPLE_RATE)) as decoding
    ):
        spotted = spot_stretches(
            stretches,
            decoding,
            phrases,
            config.model_dir,
            config.per_phone,
            workers=workers,
            scan=SCAN if config.scan else None,
            # Only a strong phrase the scan hears starts the search. Not the return cue, though the scan
            # sometimes hears an ad's "back to the show" and none of its strong phrases: at the scan's
            # loose threshold it also hears it ~21 times an hour in speech-like noise, and searching
            # around those made --words auto 5.1x --words off instead of 3.8x (process_speed.py --words).
            triggers=strong,
            # The close search may read on into what the sound model calls an ad: a model trained on a
            # show's own read ads often hears the middle of one, and the phrases there are what join
            # the lead-in and the offer heard in the content on either side into one ad.
            search_within=[(0.0, duration)],
        )
        hits = spotted.hits
        sound_ads = [(float(s.start), float(s.end)) for s in segments if s.label != background]
        ads = beyond_sound(word_ads(hits, phrases, decoding.pauses(), duration, config), sound_ads)
        ads, rejected = confirmed(ads, decoding, phrases, strong, config, workers, spotted.cmn, sound_ads)
    fused = fuse(curve, step_seconds, ads, 0, config.ad_probability) if ads else curve
    record = {
        # asked for: the content stretches (all of the episode with --words-full)
        "recognised_seconds": round(seconds_in(stretches), 1),
        "scanned_seconds": round(spotted.scanned_seconds, 1),  # read by the cheap scan
        "searched_seconds": round(spotted.searched_seconds, 1),  # read by the full search
        "recognition_wall_seconds": round(time.perf_counter() - began, 2),
        "phrases": len(phrases),
        "hits": [h.to_dict() for h in hits],
        "word_ads": ads,
        "unconfirmed_ads": rejected,  # heard by the search, not by the stricter confirmation
        "evidence_per_second": [round(float(v), 3) for v in evidence_curve(hits, phrases, duration)],
    }
    log.info(
        "words: scanned %.0f s of %.0f s, searched %.0f s closely, in %.1f s; %d phrases heard, %d word ads",
        record["scanned_seconds"],
        duration,
        record["searched_seconds"],
        record["recognition_wall_seconds"],
        len(hits),
        len(ads),
    )
    return fused, record
