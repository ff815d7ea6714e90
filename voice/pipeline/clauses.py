"""Clause aggregation: LLM text cut into speakable clauses, each sent to TTS at once.

The first clause goes as soon as it is complete (a comma after a few words is enough),
later ones at sentence ends (voice.chunker). A reply stops at the variant's sentence
limit: past it the stage reads on only while nothing but a tool call follows ("Let me
check. <tool_call>…"); any more text and it tells the LLM to stop (``StopGeneration``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voice.chunker import Chunker
from voice.pipeline.frames import (
    CancelTurn,
    Clause,
    Direction,
    Frame,
    LlmRoundEnd,
    LlmText,
    StopGeneration,
    TurnFailed,
)
from voice.pipeline.stage import Stage
from voice.session.events import AgentSpeech


@dataclass
class _Round:
    turn: int
    chunker: Chunker = field(default_factory=Chunker)
    spoken: list[str] = field(default_factory=list)
    enough: bool = False
    stopped: bool = False


def said_enough(spoken: list[str], max_sentences: int) -> bool:
    sentences = sum(1 for clause in spoken if clause.rstrip().endswith((".", "!", "?")))
    return sentences >= max_sentences


class ClauseStage(Stage):
    name = "clauses"

    def __init__(self, *, max_sentences: int) -> None:
        super().__init__()
        self.max_sentences = max_sentences
        self._round: _Round | None = None

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, LlmText) and frame.turn is not None:
            await self._text(frame.speech, frame.turn, frame.text)
        elif isinstance(frame, LlmRoundEnd) and frame.turn is not None:
            current, self._round = self._round, None
            if current is not None and current.turn == frame.turn and not current.stopped:
                for clause in [] if current.enough else current.chunker.flush():
                    await self.push(Clause(speech=frame.speech, turn=frame.turn, text=clause))
            await self.push(frame, direction)
        elif isinstance(frame, TurnFailed) or (
                isinstance(frame, CancelTurn) and self._round is not None
                and self._round.turn <= frame.upto):
            self._round = None  # what it held of that turn is not to be said
            await self.push(frame, direction)
        else:
            await self.push(frame, direction)

    async def _text(self, speech: AgentSpeech, turn: int, text: str) -> None:
        current = self._round
        if current is None or current.turn != turn:
            current = self._round = _Round(turn=turn)
        if current.stopped:
            return
        clauses = current.chunker.feed(text)
        if current.enough and (clauses or current.chunker.buffer.strip()):
            current.stopped = True  # said enough and talking on: a phone answer stays short
            await self.push(StopGeneration(turn=turn), Direction.UP)
            return
        for clause in [] if current.enough else clauses:
            speech.mark("first_clause", self.clock())
            current.spoken.append(clause)
            await self.push(Clause(speech=speech, turn=turn, text=clause))
        current.enough = said_enough(current.spoken, self.max_sentences)
