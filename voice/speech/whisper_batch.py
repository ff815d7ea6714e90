"""Whisper across calls: utterances that arrive while a batch decodes are decoded together.

One thread owns the models (CTranslate2 runs one request per model at a time anyway). It
takes the first waiting utterance at once (no added wait when idle) and, with it, every
other one that arrived while the previous batch ran, up to ``TOM_STT_BATCH``. Those that
share a model and language go through one encoder pass on stacked features and one
``generate`` with a prompt per utterance (faster-whisper's BatchedInferencePipeline does
the same for the windows of one long file: ``generate_segment_batched``). The decode is
TOM's in-process one (voice.stt.WhisperStt): greedy at temperature 0, the beam from
settings, the token cap per utterance, no-speech windows dropped, loops collapsed.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from voice.stt import (
    WHISPER_RATE,
    Transcription,
    WhisperStt,
    max_new_tokens,
    repeats_collapsed,
)

logger = logging.getLogger(__name__)

WINDOW_S = 30  # Whisper's window: a longer utterance is decoded alone, window by window
# faster-whisper's defaults, which the in-process decode uses: a window Whisper thinks
# silent and decodes without confidence gives no text.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


@dataclass(slots=True)
class SttJob:
    """One utterance to transcribe and, once ``done`` is set, its result or error."""

    model_key: str  # the Whisper folder
    audio: np.ndarray  # float32 mono at 16 kHz
    language: str | None
    prompt: str = ""
    hotwords: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    result: Transcription | None = None
    error: BaseException | None = None
    batch_size: int = 0  # how many utterances were decoded with this one

    def wait(self, timeout: float) -> Transcription:
        if not self.done.wait(timeout):
            raise TimeoutError(f"no transcription within {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        if self.result is None:  # not reached: the batcher sets one of the two
            raise RuntimeError("the batcher finished without a result")
        return self.result


class WhisperBatcher:
    """The thread that decodes queued ``SttJob``s in batches of at most ``max_batch``."""

    def __init__(self, *, models: dict[str, WhisperStt], max_batch: int) -> None:
        self.models = models  # filled by the server as it loads them
        self.max_batch = max(1, max_batch)
        self._queue: queue.Queue[SttJob] = queue.Queue()
        self._stats_guard = threading.Lock()
        self.sizes: Counter[int] = Counter()  # batch size → how many batches had it
        self.busy = 0  # utterances in the batch being decoded now
        self._thread = threading.Thread(target=self._run, name="whisper-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: SttJob) -> SttJob:
        self._queue.put(job)
        return job

    def stats(self) -> dict[str, Any]:
        with self._stats_guard:
            return {"batches": sum(self.sizes.values()),
                    "utterances": sum(size * n for size, n in self.sizes.items()),
                    "sizes": {str(size): n for size, n in sorted(self.sizes.items())},
                    "largest": max(self.sizes, default=0), "busy": self.busy,
                    "queued": self._queue.qsize(), "max_batch": self.max_batch}

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]  # blocks while idle; taken at once when one comes
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())  # arrived during the last batch
                except queue.Empty:
                    break
            with self._stats_guard:
                self.sizes[len(batch)] += 1
                self.busy = len(batch)
            for job in batch:
                job.batch_size = len(batch)
            groups: dict[tuple[str, str | None], list[SttJob]] = {}
            for job in batch:
                groups.setdefault((job.model_key, job.language), []).append(job)
            for (model_key, _), jobs in groups.items():
                self._decode_group(model_key, jobs)
            with self._stats_guard:
                self.busy = 0

    def _decode_group(self, model_key: str, jobs: list[SttJob]) -> None:
        try:
            stt = self.models[model_key]
            long = [j for j in jobs if j.audio.size > WINDOW_S * WHISPER_RATE]
            short = [j for j in jobs if j.audio.size <= WINDOW_S * WHISPER_RATE]
            for job in long:  # more than one window: the in-process decode, seek by seek
                pcm = (np.clip(job.audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
                job.result = stt.transcribe(pcm, rate=WHISPER_RATE, language=job.language,
                                            hotwords=job.hotwords, prompt=job.prompt)
                job.done.set()
            if short:
                for job, result in zip(short, decode_batch(stt, short), strict=True):
                    job.result = result
                    job.done.set()
        except BaseException as exc:  # every waiting request hears why, the thread lives on
            logger.exception("speech.stt_batch_failed", extra={"size": len(jobs)})
            for job in jobs:
                if not job.done.is_set():
                    job.error = exc
                    job.done.set()


def window_frames(*, content: int, nb_max_frames: int) -> int:
    """Mel frames the encoder reads for ``content`` frames of speech.

    Whisper pads every clip to 30 s, and on a CPU the encoder's cost is that window's, not
    the speech's: for a 3 s question, 90 % of the work is silence. CTranslate2 encodes a
    shorter window. ``TOM_STT_WINDOW_S`` (10 s) with 2 s of silence after the speech at
    least measured 0.25x the 30 s encoder time with the same transcripts of the Piper
    corpus, where windows of speech + 1 s made Whisper repeat itself (bench/stt_window.py).
    """
    margin = 2 * 100  # 2 s at Whisper's 100 frames a second
    frames = max(settings.TOM_STT_WINDOW_S * 100, content + margin)
    return min(nb_max_frames, frames + frames % 2)  # even: the encoder's stride is 2


def decode_batch(stt: WhisperStt, jobs: list[SttJob]) -> list[Transcription]:
    """Transcribe ``jobs`` (one model and language, each at most one window) together.

    CTranslate2 decodes a batch only when its start-of-transcript token sits at the same
    position in every prompt, i.e. when the biasing texts before it are equally long. The
    catalog's prompt is the same for every call of a language, so calls batch; an
    utterance with other biasing text is decoded in a batch of its own kind.
    """
    from faster_whisper.tokenizer import Tokenizer

    model = stt.model
    multilingual = bool(model.model.is_multilingual)
    language = "en" if stt.english_only or not multilingual else jobs[0].language
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe",
                          language=language or "en")  # its language token is a placeholder
    prompts = []
    for job in jobs:
        previous = tokenizer.encode(" " + job.prompt.strip()) if job.prompt else []
        prompts.append(model.get_prompt(tokenizer, previous, without_timestamps=True,
                                        hotwords=job.hotwords or None))
    kinds: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        kinds.setdefault(prompt.index(tokenizer.sot), []).append(index)
    out: dict[int, Transcription] = {}
    for indices in kinds.values():
        found = _generate(stt, [jobs[i] for i in indices], [prompts[i] for i in indices],
                          language=language, tokenizer=tokenizer)
        out.update(zip(indices, found, strict=True))
    return [out[index] for index in range(len(jobs))]


def _generate(stt: WhisperStt, jobs: list[SttJob], prompts: list[list[int]], *,
              language: str | None, tokenizer: Any) -> list[Transcription]:
    """One encoder pass on the stacked windows and one ``generate`` for ``jobs``."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.transcribe import get_suppressed_tokens

    started = time.perf_counter()
    model = stt.model
    extractor = model.feature_extractor
    # One utterance heard twice (unbiased, then with the catalog's prompt: TOM_STT_BIAS=
    # conditional) is encoded once: the second pass costs the decoder only.
    key = None if len(jobs) != 1 else (
        hashlib.blake2b(jobs[0].audio.tobytes(), digest_size=16).digest(),
        settings.TOM_STT_WINDOW_S)
    encoder_output = stt.encoded.get(key) if key is not None else None
    if encoder_output is None:
        mels = [extractor(job.audio) for job in jobs]
        # as generate_segments cuts
        contents = [min(extractor.nb_max_frames, mel.shape[-1] - 1) for mel in mels]
        frames = window_frames(content=max(contents), nb_max_frames=extractor.nb_max_frames)
        features = [pad_or_trim(mel[:, :content], frames) for mel, content in zip(
            mels, contents, strict=True)]
        encoder_output = model.encode(np.stack(features).astype(np.float32))
        if key is not None:
            stt.encoded.put(key, encoder_output)
    languages = [language or ""] * len(jobs)
    if language is None:  # the call did not say: Whisper's guess per utterance
        found = model.model.detect_language(encoder_output)
        languages = [guesses[0][0][2:-2] for guesses in found]
        position = prompts[0].index(tokenizer.language)
        for prompt, guesses in zip(prompts, found, strict=True):
            prompt[position] = tokenizer.tokenizer.token_to_id(guesses[0][0])
    caps = [max_new_tokens(samples=job.audio.size, rate=WHISPER_RATE) for job in jobs]
    # One generate for all: it stops at the longest cap, each text is cut at its own.
    max_length = min(model.max_length, max(len(p) + c for p, c in zip(prompts, caps,
                                                                      strict=True)))
    results = model.model.generate(
        encoder_output, prompts, beam_size=stt.beam_size, patience=1.0, length_penalty=1.0,
        repetition_penalty=1.0, no_repeat_ngram_size=0, max_length=max_length,
        return_scores=True, return_no_speech_prob=True, suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1]) or []))
    ms = round((time.perf_counter() - started) * 1000)
    out = []
    for result, cap, code in zip(results, caps, languages, strict=True):
        tokens = result.sequences_ids[0][:cap]
        length = len(result.sequences_ids[0])
        avg_logprob = result.scores[0] * length / (length + 1)
        silent = (result.no_speech_prob > NO_SPEECH_THRESHOLD
                  and avg_logprob <= LOG_PROB_THRESHOLD)
        text = "" if silent else tokenizer.decode(tokens).strip()
        out.append(Transcription(text=repeats_collapsed(text), language=code, ms=ms))
    return out
