"""The local session: the call pipeline (voice.pipeline) with this process's models.

VAD → faster-whisper → llama.cpp → Piper, each model loaded once per process
(voice.stt/llm/tts, chosen by ``TOM_*_BACKEND``) and run in worker threads behind slots
sized by ``TOM_*_MAX_CONCURRENCY`` (voice.session.slots). This class only builds the
stages for one call from its policy variant and hands them the caller's audio; what
happens to it is the stages' business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings

from calls import variants
from voice import llm as llm_module
from voice import models, stt, tts
from voice import tools as tool_hooks
from voice.pipeline.clauses import ClauseStage
from voice.pipeline.context import ContextStage
from voice.pipeline.frames import CallerAudio, InputEnded
from voice.pipeline.inbound import InboundStage
from voice.pipeline.llm_stage import LlmStage
from voice.pipeline.output import OutputStage
from voice.pipeline.stage import Pipeline
from voice.pipeline.stt_stage import SttStage
from voice.pipeline.tts_stage import TtsStage, engine_for
from voice.pipeline.turns import TurnStage
from voice.protocols.metadata import CallStart
from voice.session.apology import APOLOGY_EN as APOLOGY_EN  # re-exported for callers
from voice.session.base import RealtimeSession
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

DRAIN_LIMIT_S = 30.0  # end of input: the last turn gets this long to be answered


class LocalSession(RealtimeSession):
    """``stt``/``llm``/``tts`` default to the process-wide models; tests pass scripted ones."""

    def __init__(self, *, call: CallStart, stt_backend: stt.SttBackend | None = None,
                 llm_backend: llm_module.LlmBackend | None = None,
                 tts_backend: tts.TtsBackend | None = None,
                 tool_hook: tool_hooks.ToolHook | None = None,
                 call_id: int | None = None,
                 params: variants.VariantParameters | None = None) -> None:
        super().__init__(call=call)
        self._stt, self._llm, self._tts = stt_backend, llm_backend, tts_backend
        self.tools, self.call_id = tool_hook, call_id
        # The call's policy variant decides the persona, voice and turn-taking.
        self.params = params or variants.defaults()
        self.language = (self.params.language or call.language or settings.TOM_LANGUAGE
                         or "en").lower()
        self.stt_model = models.stt_model_name(language=self.language,
                                               variant=self.params.stt_model)
        self.vocabulary: Any = None  # the catalog's words (hotwords, entity correction)
        self.turns = TurnStage(stop_ms=self.params.vad_stop_ms,
                               barge_in_ms=self.params.barge_in_min_speech_ms,
                               mixed=call.mix_type == "mixed",
                               preempt_ms=settings.TOM_STT_PREEMPT_MS,
                               overdue_s=settings.TOM_TURN_OVERDUE_S)
        self.stt = SttStage(backend=self._stt_backend, language=self.language,
                            vocabulary=lambda: self.vocabulary, reply_rate=call.sample_rate,
                            speculate=settings.TOM_LLM_SPECULATE)
        self.context = ContextStage(language=self.language, system_prompt=self._prompt,
                                    tools=tool_hook, call_id=call_id,
                                    fillers=self.params.fillers)
        self.stt.observer = self._progressed
        self.output = OutputStage(lanes=self.events)
        self.pipeline = Pipeline([
            InboundStage(rate=call.sample_rate), self.turns, self.stt, self.context,
            LlmStage(backend=self._llm_backend),
            ClauseStage(max_sentences=self.params.max_sentences),
            TtsStage(engine=self._engine, rate=call.sample_rate, language=self.language),
            self.output,
        ])
        self._started = False

    # The stages hold the state; these are views of it for the transport and the tests.
    @property
    def speech(self) -> AgentSpeech | None:
        return self.output.speech if hasattr(self, "output") else None

    @speech.setter
    def speech(self, value: AgentSpeech | None) -> None:
        if value is not None:
            raise AttributeError("the output stage says which utterance is current")

    @property
    def history(self) -> list[dict[str, str]]:
        return self.context.history

    @property
    def segmenter(self) -> Any:
        return self.turns.segmenter

    async def prepare(self) -> None:
        """Load (or reuse) the models before the call is answered."""
        self._stt = self._stt or await asyncio.to_thread(stt.get_stt, self.stt_model)
        self._llm = self._llm or await asyncio.to_thread(llm_module.get_llm)
        self._tts = self._tts or await self._engine()
        if self.tools is not None:
            await self.tools.prepare()
            try:
                self.vocabulary = await self.tools.vocabulary(language=self.language)
            except Exception:  # no catalog words: plain transcription still works
                logger.exception("session.vocabulary_failed")

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        """Caller audio (L16 at the call's rate, any length) into the pipeline."""
        self._start()
        await self.pipeline.queue(CallerAudio(pcm=frame, at=at))

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.pipeline.start()

    def _prompt(self) -> str:
        return self.params.prompt(language=self.language,
                                  default=llm_module.system_prompt(language=self.language))

    def _stt_backend(self) -> stt.SttBackend:
        return self._stt or stt.get_stt(self.stt_model)

    async def _llm_backend(self) -> llm_module.LlmBackend:
        return self._llm if self._llm is not None else await asyncio.to_thread(
            llm_module.get_llm)

    async def _engine(self) -> tts.TtsBackend:
        return await engine_for(language=self.language, voice=self.params.piper_voice,
                                speaking_rate=self.params.speaking_rate, fixed=self._tts)

    async def end_of_input(self, *, at: float) -> None:
        """No more caller audio: what was said is a turn; wait until it is answered."""
        self._start()
        await self.pipeline.queue(InputEnded(at=at))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pipeline.idle(), DRAIN_LIMIT_S)

    def _progressed(self, mark: str) -> None:
        if self.progress is not None:
            self.progress(mark)

    async def aclose(self) -> None:
        await self.pipeline.stop()
