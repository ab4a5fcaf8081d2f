"""Offline speech recognition with pocketsphinx: spotting sponsor phrases, and transcribing for the learner.

Nothing is downloaded: the ``pocketsphinx`` wheel ships an English (US) acoustic model, dictionary
and language model. Another language is another model folder laid out the same way: an acoustic
model folder (the one holding ``mdef``), a pronunciation dictionary ``*.dict`` and, for
transcription, a language model ``*.lm.bin`` (or ``*.lm``).

Phrases are found by keyword spotting: a search for just those phrases, far cheaper than
transcribing. Each phrase's detection threshold is ``1e-(per_phone * phones)``: a long phrase
needs more acoustic evidence in total, and a short one ("use code") must not fire on every
similar sound. A larger ``per_phone`` is a lower threshold: more hits, true and false. ``adcut
process`` searches with 5.0 and confirms each ad it makes with 3.5 (``detect.words.WordsConfig``:
real speech and music fired phrases at 4 and above); the phrase learner checks its candidates
with ``DEFAULT_PER_PHONE``.

Reading a whole episode at that quality runs at ~33x realtime per core, so ``spot_stretches`` reads in
two passes: a SCAN of everything at 40 frames a second, scoring the acoustic model on every other
frame, with a looser threshold (~125x realtime per core); then the full search only around what the
scan heard, where the hits that decide an ad come from. What the scan costs is mostly how often the
acoustic model is scored: ``benchmarks/scan_recall.py`` compares settings on unseen host-read
episodes (every 50 ms heard all 48 read ads of 24 episodes; every 60 ms, the previous 50 frames a
second scored every third, 43 at the same cost; every 75 ms or more, 43 and fewer).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.core.segments import subtract_spans
from adcut.errors import AdcutError
from adcut.words.phrases import Phrase

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the shipped acoustic model's rate
DEFAULT_PER_PHONE = 4.5


@dataclass(frozen=True)
class Search:
    """The pocketsphinx settings of one pass: threshold exponent per phone, frames a second, GMM every
    ``downsample`` frames, from the ``top_gaussians`` best of each codebook, pruning paths ``beam`` below the best."""

    per_phone: float = DEFAULT_PER_PHONE
    frame_rate: int = 100
    downsample: int = 1
    top_gaussians: int = 4  # pocketsphinx's default
    beam: float = 1e-48  # pocketsphinx's default

    @property
    def frame_seconds(self) -> float:
        return 1.0 / self.frame_rate


# The cheap first pass (measured with benchmarks/scan_recall.py, see the module doc): it only
# says where to listen closely, so a looser threshold (more hits) costs a little re-reading, not a false ad.
SCAN = Search(per_phone=6.0, frame_rate=40, downsample=2)
INSTALL_HINT = "pip install pocketsphinx (it ships the English model), or run with --words off"


class WordsError(AdcutError):
    """Recognition cannot run: pocketsphinx missing, or a model folder that is not one."""


def require_pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise WordsError(
            f"hearing the words needs pocketsphinx, which is not installed: {INSTALL_HINT}"
        ) from None
    return pocketsphinx


def pocketsphinx_available() -> bool:
    try:
        require_pocketsphinx()
    except WordsError:
        return False
    return True


@dataclass(frozen=True)
class ModelFiles:
    folder: Path
    acoustic: Path  # folder holding mdef, means, variances...
    dictionary: Path
    language_model: Path | None


def model_files(model_dir: str | Path | None = None) -> ModelFiles:
    """The parts of a pocketsphinx model folder (default: the English model in the wheel); one clear error if any is missing."""
    if model_dir is None:
        folder = Path(require_pocketsphinx().get_model_path()) / "en-us"
    else:
        folder = Path(model_dir)
    if not folder.is_dir():
        raise WordsError(f"{folder}: speech model folder not found")
    acoustic = [p.parent for p in sorted(folder.rglob("mdef"))]
    dictionaries = sorted(p for p in folder.rglob("*.dict") if "phone" not in p.name) or sorted(
        folder.rglob("*.dic")
    )
    lms = sorted(p for p in folder.rglob("*.lm.bin") if "phone" not in p.name) or sorted(
        p for p in folder.rglob("*.lm") if "phone" not in p.name
    )
    if not acoustic:
        raise WordsError(
            f"{folder}: not a pocketsphinx model folder (no acoustic model: no 'mdef' file in it)"
        )
    if not dictionaries:
        raise WordsError(f"{folder}: not a pocketsphinx model folder (no pronunciation dictionary '*.dict')")
    return ModelFiles(folder, acoustic[0], dictionaries[0], lms[0] if lms else None)


def read_dictionary(path: Path) -> dict[str, int]:
    """Word -> number of phones of its first pronunciation (read once per file and process: every
    spotter needs it, and the English dictionary takes ~0.4 s to parse). Do not modify the result."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise WordsError(f"{path}: cannot read the dictionary ({error.strerror or error})") from None
    return _parsed_dictionary(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _parsed_dictionary(path: str, _mtime_ns: int, _size: int) -> dict[str, int]:
    words: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) >= 2 and "(" not in parts[0]:
                    words.setdefault(parts[0].lower(), len(parts) - 1)
    except OSError as error:
        raise WordsError(f"{path}: cannot read the dictionary ({error.strerror or error})") from None
    if not words:
        raise WordsError(f"{path}: the pronunciation dictionary is empty or unreadable")
    return words


@functools.lru_cache(maxsize=16)
def _phrase_dictionary(path: Path, phrases: tuple[str, ...]) -> str:
    return dictionary_lines(path, {w for text in phrases for w in text.split()})


def dictionary_lines(path: Path, words) -> str:
    """The dictionary's entries (every pronunciation) for ``words`` only: a spotter's decoder loads
    this instead of the whole dictionary, which it would parse again for a few phrases' words."""
    wanted = sorted({re.escape(w) for w in words}, key=len, reverse=True)
    if not wanted:
        return ""
    pattern = re.compile(rf"^(?:{'|'.join(wanted)})(?:\(\d+\))?[ \t][^\n]*\n?", re.MULTILINE | re.IGNORECASE)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise WordsError(f"{path}: cannot read the dictionary ({error.strerror or error})") from None
    return "".join(m.group(0).rstrip("\n") + "\n" for m in pattern.finditer(text))


_PROBE = """
import sys
from pocketsphinx import Decoder
Decoder(hmm=sys.argv[1], dict=sys.argv[2], samprate=16000, loglevel="FATAL", lm=None)
"""


@functools.lru_cache(maxsize=8)
def check_model(files: ModelFiles) -> None:
    """Load the model once in a child process: pocketsphinx ends the whole process on a broken model file."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(files.acoustic), str(files.dictionary)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise WordsError(f"{files.folder}: pocketsphinx could not load this speech model ({reason[:200]})")


def _decoder(files: ModelFiles, dictionary: Path | None = None, **search):
    """A pocketsphinx decoder of ``files``' acoustic model with ``dictionary`` (default: the model's own)."""
    from pocketsphinx import Decoder

    check_model(files)

    try:
        return Decoder(
            hmm=str(files.acoustic),
            dict=str(dictionary or files.dictionary),
            samprate=SAMPLE_RATE,
            loglevel="FATAL",
            **search,
        )
    except (RuntimeError, ValueError) as error:
        raise WordsError(f"{files.folder}: pocketsphinx could not load this speech model ({error})") from None


def to_pcm16(samples: np.ndarray) -> bytes:
    from adcut.media.decode import pcm16

    if samples.dtype == np.int16:
        return samples.tobytes()
    return pcm16(samples).tobytes()


@dataclass(frozen=True)
class Hit:
    phrase: str
    start: float  # seconds in the episode
    end: float

    def to_dict(self) -> dict:
        return {"phrase": self.phrase, "start": round(self.start, 2), "end": round(self.end, 2)}


class Spotter:
    """Keyword spotting of ``phrases`` in 16 kHz mono speech."""

    CHUNK = 1600  # samples fed at a time (0.1 s): a phrase is reported within 0.1 s of its end

    def __init__(
        self,
        phrases,
        model_dir: str | Path | None = None,
        per_phone: float = DEFAULT_PER_PHONE,
        search: Search | None = None,
    ):
        require_pocketsphinx()
        self.search = search or Search(per_phone)
        self.files = model_files(model_dir)
        vocabulary = read_dictionary(self.files.dictionary)
        kept, dropped = [], []
        for phrase in phrases:
            text = phrase.text if isinstance(phrase, Phrase) else str(phrase)
            words = text.split()
            if words and all(w in vocabulary for w in words):
                kept.append((text, sum(vocabulary[w] for w in words)))
            else:
                dropped.append(text)
        if dropped:
            log.warning(
                "phrases with words the speech model's dictionary lacks are not spotted: %s",
                ", ".join(dropped),
            )
        if not kept:
            raise WordsError(
                "none of the ad phrases can be spotted: every one has a word the speech model's dictionary lacks"
            )
        self.phrases = [text for text, _ in kept]
        self.phones = dict(kept)
        handle, name = tempfile.mkstemp(suffix=".kws", prefix="adcut-")
        words_handle, words_name = tempfile.mkstemp(suffix=".dict", prefix="adcut-")
        try:
            with os.fdopen(handle, "w") as out:
                for text, phones in kept:
                    out.write(f"{text} /1e-{max(1, int(round(self.search.per_phone * phones)))}/\n")
            with os.fdopen(words_handle, "w", encoding="utf-8") as out:
                out.write(_phrase_dictionary(self.files.dictionary, tuple(self.phrases)))
            self.decoder = _decoder(
                self.files,
                dictionary=Path(words_name),
                kws=name,
                frate=self.search.frame_rate,
                ds=self.search.downsample,
                topn=self.search.top_gaussians,
                beam=self.search.beam,
            )
            # pocketsphinx carries its cepstral mean from one utterance to the next: each piece starts
            # from the same one (``warm_up``), so what is heard does not depend on which pieces a worker
            # read before (with several workers that order changes from run to run).
            self.initial_cmn = self.decoder.get_cmn()
        finally:
            os.unlink(name)
            os.unlink(words_name)

    def warm_up(self, samples: np.ndarray) -> str:
        """Estimate the cepstral mean on ``samples`` (the model's initial one is far from real audio's, and
        a piece started cold misses phrases); every later piece starts from it. Returns it."""
        self.spot(samples)
        self.initial_cmn = self.decoder.get_cmn()
        return self.initial_cmn

    def spot(self, samples: np.ndarray, offset: float = 0.0) -> list[Hit]:
        """Every phrase heard in ``samples`` (16 kHz mono), with episode times (``offset`` = the samples' start).

        One utterance from start to end, each detection reported once: restarting the search after
        every hit, as keyword spotting loops often do, would drop a phrase still being heard when
        another one fires inside it ("dot com" inside "dot com slash")."""
        decoder = self.decoder
        frame = self.search.frame_seconds
        pcm = np.frombuffer(to_pcm16(samples), dtype=np.int16)
        hits: list[Hit] = []
        reported: set[tuple[str, int]] = set()
        decoder.set_cmn(self.initial_cmn)
        decoder.start_utt()
        for i in range(0, len(pcm), self.CHUNK):
            chunk = pcm[i : i + self.CHUNK]
            decoder.process_raw(chunk.tobytes(), False, False)
            if decoder.hyp() is None:
                continue
            end = (i + len(chunk)) / SAMPLE_RATE
            for seg in decoder.seg() or []:
                text = " ".join(seg.word.split())
                if text not in self.phones or (text, seg.start_frame) in reported:
                    continue
                reported.add((text, seg.start_frame))
                hits.append(
                    Hit(
                        text, offset + seg.start_frame * frame, offset + min(end, (seg.end_frame + 1) * frame)
                    )
                )
        decoder.end_utt()
        return hits


class Transcriber:
    """Plain transcription with the model's language model (for the phrase learner: slow, run once per dataset)."""

    def __init__(self, model_dir: str | Path | None = None):
        require_pocketsphinx()
        self.files = model_files(model_dir)
        if self.files.language_model is None:
            raise WordsError(
                f"{self.files.folder}: has no language model ('*.lm.bin' or '*.lm'), which learning phrases needs"
            )
        # A narrow search (measured on espeak-ng speech: twice as fast as the default beam, the same words).
        self.decoder = _decoder(
            self.files, lm=str(self.files.language_model), ds=2, maxhmmpf=3000, maxwpf=5, pl_window=10
        )

    def words(self, samples: np.ndarray) -> list[str]:
        decoder = self.decoder
        decoder.start_utt()
        decoder.process_raw(to_pcm16(samples), False, True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return [
            w
            for w in (hyp.hypstr.split() if hyp is not None else [])
            if not w.startswith("<") and not w.startswith("[")
        ]


PAUSE_FRAME = 0.02  # seconds: the frames whose levels find sentence breaks


def frame_levels(samples: np.ndarray, frame: float = PAUSE_FRAME) -> np.ndarray:
    """Level in dB of each whole ``frame`` of 16 kHz ``samples`` (float or int16)."""
    n = int(frame * SAMPLE_RATE)
    count = len(samples) // n
    level = np.empty(count, np.float32)
    scale = 1 / 32768.0 if samples.dtype == np.int16 else 1.0
    step = 3000  # frames at a time (a minute): an hour's float copy at once would cost a few hundred MB
    for k in range(0, count, step):
        x = samples[k * n : min(count, k + step) * n].astype(np.float32).reshape(-1, n) * scale
        level[k : k + len(x)] = 10 * np.log10((x * x).mean(axis=1) + 1e-10)
    return level


def pauses_from_levels(
    level: np.ndarray, min_pause: float = 0.25, frame: float = PAUSE_FRAME
) -> list[tuple[float, float]]:
    """(start, end) seconds of the quiet stretches: frames 30 dB under the loud ones, at least ``min_pause`` long."""
    if len(level) == 0:
        return []
    quiet = level < np.percentile(level, 95) - 30
    pauses = []
    run_start = None
    for k, q in enumerate(np.append(quiet, False)):
        if q and run_start is None:
            run_start = k
        elif not q and run_start is not None:
            if (k - run_start) * frame >= min_pause:
                pauses.append((run_start * frame, k * frame))
            run_start = None
    return pauses


def speech_pauses(
    samples: np.ndarray, min_pause: float = 0.25, frame: float = PAUSE_FRAME
) -> list[tuple[float, float]]:
    """(start, end) seconds of the quiet stretches in 16 kHz speech (``pauses_from_levels``)."""
    return pauses_from_levels(frame_levels(samples, frame), min_pause, frame)


# --- many stretches at once, in worker processes -------------------------------------------------


class Decoded:
    """16 kHz int16 audio to read pieces of: here, audio already in memory."""

    def __init__(self, audio: np.ndarray):
        self._audio = np.frombuffer(to_pcm16(audio), dtype=np.int16)
        self.filled = len(self._audio)

    def until(self, sample: int) -> None:
        """Decode on until the first ``sample`` samples are in (or the episode ends)."""

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``[lo, hi)``, as far as they are decoded."""
        return self._audio[lo : min(hi, self.filled)]

    def finish(self) -> None:
        """Decode to the end."""

    def pauses(self, min_pause: float = 0.25) -> list[tuple[float, float]]:
        """The sentence breaks of the whole episode (``pauses_from_levels``)."""
        return speech_pauses(self._audio, min_pause)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _speech_file():
    """An unnamed temporary file for an episode's 16 kHz audio (gone when closed, or if adcut dies)."""
    try:
        return tempfile.TemporaryFile(prefix="adcut-16k-", buffering=0)
    except OSError as error:
        raise WordsError(
            f"cannot create a temporary file for recognition ({error.strerror or error})"
        ) from None


def _read_samples(file, lo: int, hi: int) -> np.ndarray:
    """int16 samples ``[lo, hi)`` of ``file`` (``pread``: the file's position is left alone)."""
    if hi <= lo:
        return np.zeros(0, np.int16)
    return np.frombuffer(os.pread(file.fileno(), 2 * (hi - lo), 2 * lo), dtype=np.int16)


def _disk_full(error: OSError) -> WordsError:
    return WordsError(
        f"cannot keep the 16 kHz audio for recognition in a temporary file "
        f"({error.strerror or error}; {tempfile.gettempdir()} full?)"
    )


class Decoding(Decoded):
    """An episode decoded at 16 kHz block by block into a temporary file (int16: an hour is 115 MB of disk,
    not of memory), so that recognition starts on the first pieces while the rest is still being
    decoded. The level of every 20 ms frame is measured on the way, for the sentence breaks."""

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self.filled = 0
        self._levels: list[np.ndarray] = []
        self._rest = np.zeros(0, np.int16)  # samples of a frame not yet complete
        self._file = _speech_file()

    def until(self, sample: int) -> None:
        while self.filled < sample:
            block = next(self._blocks, None)
            if block is None:
                self._blocks = iter(())
                return
            data = to_pcm16(block)
            pcm = np.frombuffer(data, dtype=np.int16)
            unwritten = memoryview(data)
            try:
                while unwritten:
                    unwritten = unwritten[self._file.write(unwritten) :]
            except OSError as error:
                raise _disk_full(error) from None
            self.filled += len(pcm)
            joined = np.concatenate([self._rest, pcm])
            whole = len(joined) - len(joined) % int(PAUSE_FRAME * SAMPLE_RATE)
            self._levels.append(frame_levels(joined[:whole]))
            self._rest = joined[whole:]

    def read(self, lo: int, hi: int) -> np.ndarray:
        return _read_samples(self._file, lo, min(hi, self.filled))

    def finish(self) -> None:
        self.until(np.iinfo(np.int64).max)

    def pauses(self, min_pause: float = 0.25) -> list[tuple[float, float]]:
        self.finish()
        return pauses_from_levels(np.concatenate(self._levels) if self._levels else np.zeros(0), min_pause)

    def close(self) -> None:
        self._file.close()


class Tapped(Decoded):
    """The episode at 16 kHz, written piece by piece (in any order) by the decode that computes the
    sound model's features (``features.episode.EpisodeMfcc(tap=...)``), into a temporary file:
    recognition then reads it without decoding the file a second time. Complete once that decode
    has ended; the sentence breaks are measured then, from the file."""

    sample_rate = SAMPLE_RATE

    def __init__(self):
        self.filled = 0
        self._levels: np.ndarray | None = None
        self._lock = threading.Lock()  # each decoding process's pieces arrive on a thread of their own
        self._file = _speech_file()

    def write(self, offset: int, pcm: np.ndarray) -> None:
        """``pcm`` (int16) as samples ``[offset, offset + len(pcm))``."""
        data = memoryview(np.ascontiguousarray(pcm, dtype=np.int16).tobytes())
        at = 2 * offset
        try:
            while data:
                written = os.pwrite(self._file.fileno(), data, at)
                data, at = data[written:], at + written
        except OSError as error:
            raise _disk_full(error) from None
        with self._lock:
            self.filled = max(self.filled, offset + len(pcm))
            self._levels = None

    def read(self, lo: int, hi: int) -> np.ndarray:
        return _read_samples(self._file, lo, min(hi, self.filled))

    def pauses(self, min_pause: float = 0.25) -> list[tuple[float, float]]:
        if self._levels is None:
            frame = int(PAUSE_FRAME * SAMPLE_RATE)
            step = 60 * SAMPLE_RATE // frame * frame  # a minute at a time: whole frames, bounded memory
            self._levels = np.concatenate(
                [frame_levels(self.read(lo, lo + step)) for lo in range(0, self.filled, step)]
                or [np.zeros(0)]
            )
        return pauses_from_levels(self._levels, min_pause)

    def close(self) -> None:
        self._file.close()


_worker_spotters: dict[Search, Spotter] = {}
_worker_setup: tuple = ()


def _init_worker(phrases, model_dir) -> None:
    global _worker_setup
    _worker_setup = (phrases, model_dir)


def _worker_spotter(search: Search) -> Spotter:
    if search not in _worker_spotters:  # built on first use: most episodes never need the full search
        phrases, model_dir = _worker_setup
        _worker_spotters[search] = Spotter(phrases, model_dir, search=search)
    return _worker_spotters[search]


def _spot_piece(piece: tuple[Search, str, np.ndarray, float]) -> list[Hit]:
    search, cmn, samples, offset = piece
    spotter = _worker_spotter(search)
    spotter.initial_cmn = cmn
    return spotter.spot(samples, offset)


def _warm_up_piece(search: Search, samples: np.ndarray) -> str:
    return _worker_spotter(search).warm_up(samples)


def piece_bounds(stretches, piece_seconds: float = 60.0, overlap: float = 4.0):
    """(first, end) samples of pieces of about ``piece_seconds`` that overlap by ``overlap``, over each (start, end) stretch."""
    for start, end in stretches:
        a = max(0.0, start)
        while a < end - 0.5:
            b = min(end, a + piece_seconds)
            lo, hi = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
            if hi > lo:
                yield lo, hi
            if b >= end:
                break
            a = b - overlap


def split_pieces(stretches, source: Decoded, piece_seconds: float = 60.0):
    """The pieces of the stretches as (samples, start seconds), each once the source has decoded it."""
    for lo, hi in piece_bounds(stretches, piece_seconds):
        source.until(hi)
        if lo < source.filled:
            yield source.read(lo, hi), lo / SAMPLE_RATE


def dedupe(hits: list[Hit], within: float = 1.0) -> list[Hit]:
    """One hit per phrase heard twice in the overlap of two pieces."""
    out: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, h.phrase)):
        if any(h.phrase == hit.phrase and abs(h.end - hit.end) < within for h in out[-8:]):
            continue
        out.append(hit)
    return out


def around(hits, reach: float, within) -> list[tuple[float, float]]:
    """The parts of the ``within`` stretches no further than ``reach`` seconds from a hit, merged."""
    spans: list[list[float]] = []
    for hit in sorted(hits, key=lambda h: h.start):
        a, b = hit.start - reach, hit.end + reach
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(max(a, lo), min(b, hi)) for a, b in spans for lo, hi in within if min(b, hi) - max(a, lo) > 0.5]


def seconds_in(stretches) -> float:
    return float(sum(b - a for a, b in stretches))


@dataclass
class Spotted:
    hits: list[Hit]
    scanned_seconds: float  # read by the cheap scan (everything asked for)
    searched_seconds: float  # read by the full search
    cmn: str | None = None  # the full search's cepstral mean (a later full search may reuse it)


def spot_stretches(
    stretches,
    audio: np.ndarray | Decoded,
    phrases,
    model_dir=None,
    per_phone: float = DEFAULT_PER_PHONE,
    workers: int = 1,
    scan: Search | None = SCAN,
    triggers=None,
    reach: float = 30.0,
    cmn: str | None = None,
    search_within=None,
) -> Spotted:
    """Spot ``phrases`` in the given (start, end) stretches of ``audio`` (16 kHz samples, or a
    ``Decoding`` still under way: the first pieces are read while the rest decodes), on ``workers``
    processes.

    With ``scan``: everything is read by that cheap search first, and the full search reads only the
    parts within ``reach`` seconds of a scan hit of a ``triggers`` phrase (all phrases when None),
    widened again where a full-search hit lies near a part's edge (a read ad runs on past it); those
    parts may reach beyond the stretches into ``search_within`` (default: the stretches only).
    Without: the full search reads everything. Every piece of a search starts from one cepstral mean,
    estimated on the first 30 s asked for; the full search's can be given (``cmn``: the ``Spotted.cmn``
    of an earlier call on the same audio).
    """
    import multiprocessing

    source = audio if isinstance(audio, Decoded) else Decoded(audio)
    full = Search(per_phone)
    stretches = [(a, b) for a, b in stretches if b - a > 0.5]
    if not stretches:
        return Spotted([], 0.0, 0.0, cmn)
    within = stretches if search_within is None else [(a, b) for a, b in search_within if b - a > 0.5]
    workers = max(1, workers)
    if (
        multiprocessing.parent_process() is not None
    ):  # a worker of adcut process DIR: the episodes share the cores
        workers = 1
    # A broken model fails here, once, with its own message; every piece of a search, on any worker,
    # starts from the same cepstral mean (per frame rate: pocketsphinx's running estimate after 30 s
    # differs between 50 and 100 frames a second).
    means: dict[int, str] = {full.frame_rate: cmn} if cmn else {}
    spotters: dict[Search, Spotter] = {}
    warming: dict = {}  # frame rate -> the pool's pending warm-up of the full search
    first = int(stretches[0][0] * SAMPLE_RATE)

    def opening() -> np.ndarray:  # where each search's cepstral mean is estimated
        source.until(first + 30 * SAMPLE_RATE)
        return source.read(first, first + 30 * SAMPLE_RATE)

    def spotter(search: Search) -> Spotter:  # built when first needed: most episodes need only the scan
        if search not in spotters:
            spotters[search] = here = Spotter(phrases, model_dir, search=search)
            if search.frame_rate not in means and search.frame_rate in warming:
                means[search.frame_rate] = warming.pop(search.frame_rate).get()
            if search.frame_rate in means:
                here.initial_cmn = means[search.frame_rate]
            else:
                means[search.frame_rate] = here.warm_up(opening())
        return spotters[search]

    spotter(scan or full)
    mapper = None  # the pool's imap, with several workers

    def read(search: Search, parts) -> list[Hit]:
        here = spotter(search)
        if mapper is None:
            pieces = split_pieces(parts, source)
            return dedupe([hit for samples, offset in pieces for hit in here.spot(samples, offset)])
        # A few short parts (the full search's, mostly) in pieces small enough to keep every worker busy.
        pieces = split_pieces(parts, source, max(15.0, min(60.0, seconds_in(parts) / workers)))
        jobs = ((search, here.initial_cmn, samples, offset) for samples, offset in pieces)
        return dedupe([hit for part in mapper(_spot_piece, jobs) for hit in part])

    def run() -> Spotted:
        if scan is None:
            return Spotted(read(full, stretches), 0.0, seconds_in(stretches), means.get(full.frame_rate))
        heard = [h for h in read(scan, stretches) if triggers is None or h.phrase in triggers]
        parts = around(heard, reach, within)
        hits = read(full, parts)
        done = parts
        for _ in range(3):  # an ad's phrases run on past a part's edge: read on from there
            edges = [
                h
                for h in hits
                if any(abs(h.start - a) < reach / 2 or abs(h.end - b) < reach / 2 for a, b in done)
            ]
            more = subtract_spans(around(edges, reach, within), done, min_seconds=0.5)
            if not more:
                break
            hits = dedupe(hits + read(full, more))
            done = sorted(done + more)
        return Spotted(hits, seconds_in(stretches), seconds_in(done), means.get(full.frame_rate))

    if workers == 1:
        return run()
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with context.Pool(workers, _init_worker, (tuple(phrases), model_dir)) as pool:
        mapper = pool.imap  # its feeder thread decodes on while the workers read the pieces already in
        if scan is not None and full.frame_rate not in means:
            # The full search's warm-up (~1 s) runs on one worker while the others scan, instead of
            # after the scan: the scan hears a trigger in most real episodes.
            warming[full.frame_rate] = pool.apply_async(_warm_up_piece, (full, opening()))
        return run()
