"""Phrases learned from a show's own labels: word sequences far more frequent in its ads than in its content.

When a dataset is built with ``--learn-phrases``, each labelled ad of the training episodes, and
about as much content (a sample, in pieces as long as the ads), is transcribed once with the
speech model's language model. Every 2- and 3-word sequence is counted by the share of ads and of
content pieces it occurs in; one that occurs in at least ``min_ads`` ads and is at least ``ratio``
times as frequent there as in content is kept, weighted by how sure that is. The phrases are
checked by keyword spotting on the ads and on more content (kept only when the spotter hears them in
several ads and hardly ever in content), stored in the dataset's manifest and, through training, in the checkpoint, where
``adcut process --words`` spots them beside the built-in list.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from adcut.words.phrases import CUE, Phrase

log = logging.getLogger(__name__)

# Words that make no phrase on their own: a sequence of only these is never kept.
STOP_WORDS = frozenset(
    "a an the and or but of to in on for at by with from is are was were be it this that you your i we our "
    "my me so as if then now there their they he she his her its".split()
)


# A learned phrase weighs at most this: it was checked on the training voices' talk only, so several
# must agree (or join a built-in phrase) before they make an ad.
MAX_LEARNED_WEIGHT = 0.5


def ngrams(words: Sequence[str], sizes=(2, 3)) -> set[str]:
    out = set()
    for n in sizes:
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if not all(w in STOP_WORDS for w in gram):
                out.add(" ".join(gram))
    return out


def learn_phrases(
    ad_docs: Sequence[Sequence[str]],
    content_docs: Sequence[Sequence[str]],
    *,
    min_ads: int = 2,
    ratio: float = 5.0,
    min_share: float = 0.15,
    limit: int = 40,
) -> list[Phrase]:
    """Phrases far more frequent in ``ad_docs`` (each a labelled ad's words) than in ``content_docs``."""
    if not ad_docs:
        return []
    ad_counts: Counter = Counter()
    content_counts: Counter = Counter()
    for doc in ad_docs:
        ad_counts.update(ngrams(doc))
    for doc in content_docs:
        content_counts.update(ngrams(doc))
    n_ads, n_content = len(ad_docs), max(1, len(content_docs))
    candidates = []
    for gram, count in ad_counts.items():
        ad_share = count / n_ads
        content_share = content_counts.get(gram, 0) / n_content
        # Add-one smoothing: a phrase never heard in content is trusted by how often it was heard in ads.
        odds = (count + 0.5) / (n_ads + 1) / ((content_counts.get(gram, 0) + 0.5) / (n_content + 1))
        if (
            count >= min(min_ads, n_ads)
            and ad_share >= min_share
            and odds >= ratio
            and ad_share > 2 * content_share
        ):
            weight = min(1.0, max(0.3, math.log(odds) / math.log(20.0)))
            candidates.append((gram, weight, count))
    # A shorter phrase inside a kept longer one with the same count adds nothing.
    kept: list[tuple[str, float, int]] = []
    for gram, weight, count in sorted(candidates, key=lambda c: (-c[2], -len(c[0].split()), -c[1], c[0])):
        if any(gram in longer and count == c for longer, _, c in kept):
            continue
        kept.append((gram, weight, count))
    kept = kept[:limit]
    return [Phrase(gram, round(weight, 3), CUE) for gram, weight, _ in kept]


def learn_from_episodes(
    episodes,
    ad_class: str,
    background: str,
    model_dir=None,
    *,
    seed: int = 0,
    content_ratio: float = 1.5,
    check_ratio: float = 4.0,
    min_phones: int = 7,
) -> list[Phrase]:
    """Transcribe the ``ad_class`` segments of ``episodes`` (``(audio path, segments)`` pairs) and a sample of
    ``background`` of about ``content_ratio`` times their length, in pieces as long as the ads; learn candidate
    phrases from the words, then keep those that keyword spotting (what ``process --words`` uses) hears in
    several ads and hardly ever in ``check_ratio`` times as much content: a transcript's words and a spotter's
    false alarms differ, and a phrase that fires in content would make ads of it."""
    from adcut.media.decode import decode
    from adcut.words.recognise import SAMPLE_RATE, Spotter, Transcriber, model_files, read_dictionary

    transcriber = Transcriber(model_dir)
    rng = np.random.default_rng(seed)
    ad_docs: list[list[str]] = []
    content_docs: list[list[str]] = []
    ad_audio: list[np.ndarray] = []
    check_audio: list[np.ndarray] = []
    for path, segments in episodes:
        ads = [s for s in segments if s.label == ad_class and s.duration >= 3]
        contents = [s for s in segments if s.label == background and s.duration >= 10]
        if not ads or not contents:
            continue
        audio = decode(path, SAMPLE_RATE)
        piece = float(np.median([s.duration for s in ads]))
        for seg in ads:
            ad_audio.append(audio[int(seg.start * SAMPLE_RATE) : int(seg.end * SAMPLE_RATE)])
            ad_docs.append(transcriber.words(ad_audio[-1]))
        budget = content_ratio * sum(s.duration for s in ads)
        while budget > 0:
            seg = contents[int(rng.integers(len(contents)))]
            length = min(piece, seg.duration)
            start = seg.start + float(rng.uniform(0, max(0.0, seg.duration - length)))
            content_docs.append(
                transcriber.words(audio[int(start * SAMPLE_RATE) : int((start + length) * SAMPLE_RATE)])
            )
            budget -= length
        check = check_ratio * sum(s.duration for s in ads)
        for seg in contents:  # whole content stretches for the false-alarm check, up to ``check`` seconds
            if check <= 0:
                break
            length = min(seg.duration, check)
            check_audio.append(audio[int(seg.start * SAMPLE_RATE) : int((seg.start + length) * SAMPLE_RATE)])
            check -= length
    vocabulary = read_dictionary(model_files(model_dir).dictionary)
    candidates = [
        p
        for p in learn_phrases(ad_docs, content_docs, limit=80)
        if sum(vocabulary.get(w, 0) for w in p.text.split()) >= min_phones
    ]
    if not candidates:
        log.info("learned no phrases from %d ads and %d content pieces", len(ad_docs), len(content_docs))
        return []
    spotter = Spotter(candidates, model_dir)
    in_ads: dict[str, int] = {}
    for audio in ad_audio:
        for text in {h.phrase for h in spotter.spot(audio)}:
            in_ads[text] = in_ads.get(text, 0) + 1
    in_content: dict[str, int] = {}
    for audio in check_audio:
        for hit in spotter.spot(audio):
            in_content[hit.phrase] = in_content.get(hit.phrase, 0) + 1
    ad_seconds = sum(len(a) for a in ad_audio) / SAMPLE_RATE
    content_seconds = max(1.0, sum(len(a) for a in check_audio) / SAMPLE_RATE)
    kept = []
    for phrase in candidates:
        heard, false = in_ads.get(phrase.text, 0), in_content.get(phrase.text, 0)
        rate_ratio = (heard + 0.5) / ad_seconds / ((false + 0.5) / content_seconds)
        if heard >= min(2, len(ad_audio)) and false <= max(1, heard // 4) and rate_ratio >= 10:
            kept.append(
                Phrase(
                    phrase.text,
                    round(min(phrase.weight, MAX_LEARNED_WEIGHT, heard / len(ad_audio) + 0.1), 3),
                    CUE,
                )
            )
    log.info(
        "learned %d phrases from %d ads and %d content pieces (%d candidates checked by spotting %.0f s of "
        "content): %s",
        len(kept),
        len(ad_docs),
        len(content_docs),
        len(candidates),
        content_seconds,
        ", ".join(p.text for p in kept[:10]),
    )
    return kept
