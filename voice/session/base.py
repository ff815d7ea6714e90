"""The one interface every realtime session backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable

from voice.protocols.metadata import CallStart
from voice.session.events import AgentSpeech, SessionEvents


class RealtimeSession(abc.ABC):
    """Caller audio in (L16 mono at the call's rate, as the module's frames decode, of any
    length: each session frames it as its VAD needs), events out on ``events``.

    ``events`` has two lanes: system events (``Interruption``, the barge-in decision,
    ``EndCall``) are read before any data frame queued earlier, so a barge-in reaches the
    caller's line even while seconds of agent audio wait to be sent.

    ``push_audio`` runs on the connection's receive path and must return quickly;
    slow work (models) runs in tasks the session owns and cancels in ``aclose``.
    """

    def __init__(self, *, call: CallStart) -> None:
        self.call = call
        self.events = SessionEvents()
        self.speech: AgentSpeech | None = None  # the latest agent utterance
        # Told the name of each stage a turn reaches (AgentSpeech.mark): the console's
        # live stage (voice.live). Set by the transport; sessions without stages never call it.
        self.progress: Callable[[str], None] | None = None

    async def prepare(self) -> None:  # noqa: B027  (optional hook: most sessions load nothing)
        """Load what the session needs before the call is answered (models, voices)."""

    @abc.abstractmethod
    async def push_audio(self, frame: bytes, *, at: float) -> None:
        """A piece of caller audio, received at loop time ``at``."""

    @abc.abstractmethod
    async def end_of_input(self, *, at: float) -> None:
        """No more caller audio will come (graceful shutdown): finish the current turn."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop all work; called once when the call ends."""

    def agent_speaking(self, now: float) -> bool:
        return self.speech is not None and self.speech.playing(now)
