"""Transcribing during speech: post-stop STT time, WER and CPU of three designs.

TOM transcribes the whole utterance once the caller stops (``today``: voice.stt
``WhisperStt.transcribe`` with the ``TOM_STT_WINDOW_S`` encoder window). Two designs
decode while the caller speaks so that only the tail is left at the stop:

- ``agree``: every ``--step-s`` of received audio, decode all of it so far with the
  committed words as the decoder prefix; words on which the last two hypotheses agree
  (LocalAgreement-2, as in whisper_streaming, Macháček et al. 2023) are committed. At
  the stop one pass over the same window, with the committed prefix, writes the tail.
- ``tail``: as ``agree``, with word timestamps in the passes during speech; at the stop
  only the audio after the last committed word (less 0.2 s) is encoded, with the
  committed words as the initial prompt, and committed + tail text are joined.

The caller speaks on a virtual clock: a pass starts once its audio has arrived and the
previous pass is done, and one still running at the stop delays the final pass (that
wait is post-stop time too). Every English clean clip (plain and catalog) goes through
all three designs, interleaved clip by clip so the machine's load falls on all alike.
Prints per design the median and p95 post-stop ms with the ratio of the medians to
``today``, WER per kind, and the CPU ms spent during speech per utterance (median):
on a shared box that work competes with other calls.

Run: .venv/bin/python bench/speech_corpus.py --out var/speech-corpus
     .venv/bin/python bench/stt_incremental.py --corpus var/speech-corpus [--limit 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

RATE = 16000
DESIGNS = ("today", "agree", "tail")
TAIL_LEAD_S = 0.2  # the last committed word's end can be late; start the tail before it


@dataclass(frozen=True, slots=True)
class Heard:
    """One decoding pass: its words (with ends in seconds, when asked) and wall ms."""

    words: list[str]
    ends: list[float]
    ms: float


@dataclass(slots=True)
class Outcome:
    """One design on one clip."""

    text: str
    post_ms: float  # from the stop to the transcript
    speech_ms: float = 0.0  # decoding work done while the caller spoke
    passes: int = 0
    committed: float = 0.0  # share of the final words committed at the stop
    extra: dict[str, float] = field(default_factory=dict)


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def agreed(first: list[str], second: list[str]) -> int:
    """How many leading words two hypotheses share (case and punctuation aside)."""
    n = 0
    while n < min(len(first), len(second)) and _norm(first[n]) == _norm(second[n]):
        n += 1
    return n


class Decoder:
    """TOM's one-window decode (voice.speech.whisper_batch._generate), plus a decoder
    prefix and word timestamps, which the production path does not offer."""

    def __init__(self, engine: Any) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.engine, self.model = engine, engine.model
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, bool(self.model.model.is_multilingual),
                                   task="transcribe", language="en")
        self.suppress = list(get_suppressed_tokens(self.tokenizer, [-1]) or [])

    def decode(self, audio: np.ndarray, *, window_s: int, prefix: str = "", prompt: str = "",
               timestamps: bool = False) -> Heard:
        from django.test import override_settings
        from faster_whisper.audio import pad_or_trim

        from voice.speech.whisper_batch import (
            LOG_PROB_THRESHOLD,
            NO_SPEECH_THRESHOLD,
            window_frames,
        )
        from voice.stt import max_new_tokens, repeats_collapsed

        started = time.perf_counter()
        model, tokenizer = self.model, self.tokenizer
        extractor = model.feature_extractor
        mel = extractor(audio)
        content = min(extractor.nb_max_frames, mel.shape[-1] - 1)
        with override_settings(TOM_STT_WINDOW_S=window_s):
            frames = window_frames(content=content, nb_max_frames=extractor.nb_max_frames)
        features = pad_or_trim(mel[:, :content], frames)
        encoder_output = model.encode(features[None].astype(np.float32))
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        tokens_in = model.get_prompt(tokenizer, previous, without_timestamps=True,
                                     prefix=prefix or None)
        given = tokenizer.encode(" " + prefix.strip()) if prefix else []
        cap = max_new_tokens(samples=audio.size, rate=RATE)
        [result] = model.model.generate(
            encoder_output, [tokens_in], beam_size=self.engine.beam_size, patience=1.0,
            length_penalty=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
            max_length=min(model.max_length, len(tokens_in) + cap), return_scores=True,
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self.suppress)
        out = result.sequences_ids[0]
        if out[:len(given)] == given:  # CTranslate2 4.x returns the decoder prefix too
            out = out[len(given):]
        new = [t for t in out[:cap] if t < tokenizer.eot]
        length = len(result.sequences_ids[0])
        silent = (result.no_speech_prob > NO_SPEECH_THRESHOLD
                  and result.scores[0] * length / (length + 1) <= LOG_PROB_THRESHOLD)
        tokens = given + ([] if silent else new)
        words = repeats_collapsed(tokenizer.decode(tokens).strip()).split()
        ends: list[float] = []
        if timestamps and tokens:
            words, ends = [], []
            [aligned] = model.find_alignment(tokenizer, [tokens], encoder_output, content)
            for item in aligned:  # punctuation comes as its own "word": join it back
                if not words or item["word"].startswith(" "):
                    words.append(item["word"].strip())
                    ends.append(float(item["end"]))
                else:
                    words[-1] += item["word"]
                    ends[-1] = float(item["end"])
        return Heard(words=words, ends=ends, ms=(time.perf_counter() - started) * 1000)


def speak(decoder: Decoder, audio: np.ndarray, *, step_s: float, window_s: int,
          timestamps: bool) -> tuple[list[str], list[float], float, float, int]:
    """LocalAgreement-2 while the caller speaks: committed words, their ends, the work
    done (ms), how long the last pass runs past the stop (ms), and the passes made."""
    duration = audio.size / RATE
    clock, busy_until, work, passes = step_s, 0.0, 0.0, 0
    committed: list[str] = []
    ends: list[float] = []
    previous: list[str] | None = None
    while clock < duration:
        heard = decoder.decode(audio[: int(clock * RATE)], window_s=window_s,
                               prefix=" ".join(committed), timestamps=timestamps)
        work, passes = work + heard.ms, passes + 1
        busy_until = clock + heard.ms / 1000
        if previous is not None:
            n = agreed(previous, heard.words)
            if n > len(committed):
                committed, ends = heard.words[:n], heard.ends[:n]
        previous = heard.words
        clock = max(clock + step_s, busy_until)  # a slow pass delays the next one
    return committed, ends, work, max(0.0, busy_until - duration) * 1000, passes


def run_clip(design: str, *, decoder: Decoder, pcm: bytes, audio: np.ndarray,
             step_s: float, window_s: int, tail_window_s: int) -> Outcome:
    if design == "today":
        from voice import stt

        decoder.engine.encoded = stt.EncodedCache(size=0)  # no encoder reuse across designs
        started = time.perf_counter()
        heard = decoder.engine.transcribe(pcm, rate=RATE, language="en")
        return Outcome(text=heard.text, post_ms=(time.perf_counter() - started) * 1000)
    timestamps = design == "tail"
    committed, ends, work, wait_ms, passes = speak(
        decoder, audio, step_s=step_s, window_s=window_s, timestamps=timestamps)
    prefix = " ".join(committed)
    if design == "agree":
        final = decoder.decode(audio, window_s=window_s, prefix=prefix)
        words = final.words
    else:
        cut = max(0.0, ends[-1] - TAIL_LEAD_S) if ends else 0.0
        # Nothing committed: the tail is the whole utterance, in today's window.
        final = decoder.decode(audio[int(cut * RATE):], prompt=prefix,
                               window_s=tail_window_s if committed else window_s)
        tail = final.words
        # The tail starts inside the last committed word, which Whisper may say again.
        for overlap in (2, 1):
            if (len(committed) >= overlap and len(tail) >= overlap
                    and agreed(committed[-overlap:], tail[:overlap]) == overlap):
                tail = tail[overlap:]
                break
        words = committed + tail
    return Outcome(text=" ".join(words), post_ms=wait_ms + final.ms, speech_ms=work,
                   passes=passes, committed=len(committed) / max(len(words), 1),
                   extra={"wait": wait_ms})


def select(clips: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """English clean clips of the plain and catalog kinds, ``limit`` per voice and kind."""
    kept, counts = [], defaultdict[str, int](int)
    for clip in clips:
        kind = clip.get("kind", "catalog")
        if (clip["language"] != "en" or clip.get("channel", "clean") != "clean"
                or kind not in ("plain", "catalog")):
            continue
        key = f"{clip['voice']}-{kind}"
        if not limit or counts[key] < limit:
            counts[key] += 1
            kept.append(clip)
    return kept


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "var" / "speech-corpus")
    parser.add_argument("--limit", type=int, default=0, help="clips per voice and kind (0: all)")
    parser.add_argument("--step-s", type=float, default=1.0,
                        help="received audio between passes during speech")
    parser.add_argument("--tail-window-s", type=int, default=0,
                        help="encoder window of the tail pass (0: the tail + 2 s margin)")
    args = parser.parse_args()
    os.environ.setdefault("TOM_DATA_DIR", tempfile.mkdtemp(prefix="tom-incremental-"))
    os.environ.update(TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1",
                      DJANGO_SETTINGS_MODULE="tomsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from speech_accuracy import wer

    from voice import stt
    from voice.client import read_wav

    clips = select(json.loads((args.corpus / "corpus.json").read_text()), args.limit)
    stt.models.assemble("whisper-base")
    engine = stt.WhisperStt(stt.models.stt_model_dir("base"), device="cpu",
                            compute_type="int8", beam_size=settings.TOM_STT_BEAM_SIZE)
    decoder = Decoder(engine)
    window_s = int(settings.TOM_STT_WINDOW_S)
    engine.transcribe(b"\0\0" * RATE, rate=RATE, language="en")  # first-call costs aside
    outcomes: dict[str, list[Outcome]] = defaultdict(list)
    errors: dict[tuple[str, str], list[float]] = defaultdict(list)
    seconds = 0.0
    for index, clip in enumerate(clips):
        pcm = read_wav(args.corpus / clip["wav"], rate=RATE)
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        seconds += audio.size / RATE
        order = DESIGNS[index % 3:] + DESIGNS[:index % 3]  # no design always goes first
        for design in order:
            outcome = run_clip(design, decoder=decoder, pcm=pcm, audio=audio,
                               step_s=args.step_s, window_s=window_s,
                               tail_window_s=args.tail_window_s)
            outcomes[design].append(outcome)
            errors[(design, clip.get("kind", "catalog"))].append(wer(clip["text"], outcome.text))
    print(f"\n{len(clips)} clips (English, clean, {seconds / max(len(clips), 1):.1f} s mean), "
          f"Whisper base int8 beam {settings.TOM_STT_BEAM_SIZE}, window {window_s} s, "
          f"step {args.step_s} s, tail window {args.tail_window_s or 'tail+2'} s, "
          f"{os.cpu_count()} cores\n")
    base = statistics.median(o.post_ms for o in outcomes["today"])
    print("| design | median post-stop ms | p95 post-stop ms | ratio to today | "
          "median wait ms | median CPU ms during speech | median passes | "
          "median committed share |\n|---|---|---|---|---|---|---|---|")
    for design in DESIGNS:
        rows = outcomes[design]
        post = [o.post_ms for o in rows]
        print(f"| {design} | {statistics.median(post):.0f} | {p95(post):.0f} | "
              f"{statistics.median(post) / base:.2f} | "
              f"{statistics.median(o.extra.get('wait', 0.0) for o in rows):.0f} | "
              f"{statistics.median(o.speech_ms for o in rows):.0f} | "
              f"{statistics.median(o.passes for o in rows):.0f} | "
              f"{statistics.median(o.committed for o in rows):.2f} |")
    print("\n| design | kind | n | WER |\n|---|---|---|---|")
    for (design, kind), values in sorted(errors.items(), key=lambda i: (
            DESIGNS.index(i[0][0]), i[0][1])):
        print(f"| {design} | {kind} | {len(values)} | {statistics.mean(values):.3f} |")


if __name__ == "__main__":
    main()
