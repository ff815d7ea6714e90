"""What every fork protocol provides for one connection, behind one small base class.

A connection picks its adapter once, at the handshake (``fork_protocol_for``); from then
on the consumer and the call's output ask it, and never the route or the ``?mode``, how
to read the module's frames and what to send back (Django's
``contrib/sessions/backends/base.py``: the base says what a backend must provide).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from voice.protocols.metadata import CallStart
    from voice.transport import Outbound, Send


@dataclass(frozen=True)
class Dtmf:
    """Digits the caller keyed in, as the dialplan relayed them (possibly empty)."""

    digits: str


@dataclass(frozen=True)
class MarkAnswer:
    """The module answered a mark: ``playout`` (heard to its end) or ``cleared``."""

    name: str
    event: str


def message_data(value: dict[str, Any]) -> dict[str, Any]:
    """A message's ``data`` object, or empty when it has none (or not an object)."""
    raw = value.get("data")
    return raw if isinstance(raw, dict) else {}


# What one control message means; None: nothing TOM acts on (the module's own events).
Control = Dtmf | MarkAnswer | None


class ForkProtocol(abc.ABC):
    """One fork module's wire protocol, for one connection.

    Attributes:
        name: the adapter's name in logs.
        flavour: the route it serves (recorded on the Call).
        mode: how agent audio goes out, ``file`` or ``stream`` (recorded on the Call).
    """

    name: ClassVar[str]
    flavour: ClassVar[str]
    mode: ClassVar[str]

    def __init__(self, *, encoding: str | None = None) -> None:
        # ``?encoding=`` on the URL wins over the metadata's (the dialplan knows the codec).
        self.encoding = encoding

    # --- inbound ---------------------------------------------------------------------
    @abc.abstractmethod
    def parse_start(self, value: Any, *, default_rate: int, token_uuid: str | None) -> CallStart:
        """The call's start from the first JSON value of the metadata frame.

        Raises ``MetadataError`` with a reason (no caller data) when it is unusable.
        """

    @abc.abstractmethod
    def decode(self, data: bytes, *, start: CallStart) -> bytes:
        """One binary frame as 16-bit little-endian mono PCM of the caller at the call's rate."""

    @abc.abstractmethod
    def control(self, value: Any) -> Control:
        """What one JSON value of a text frame after the metadata means."""

    # --- outbound --------------------------------------------------------------------
    @abc.abstractmethod
    def transport(self, *, send: Send, rate: int) -> Outbound:
        """The connection's playout transport: how agent audio reaches this module."""

    @abc.abstractmethod
    def kill_audio(self) -> str:
        """Barge-in: stop what the caller hears now."""

    @abc.abstractmethod
    def disconnect(self, reason: str) -> str:
        """TOM ends the call (hang-up, idle, blocked caller, maximum duration)."""

    @abc.abstractmethod
    def error(self, message: str) -> str:
        """TOM ends the call on an error; ``message`` holds no caller data."""

    @abc.abstractmethod
    def transcription(self, *, role: str, text: str, final: bool, turn: int) -> str:
        """What was said in a turn, for the application that listens to the module."""
