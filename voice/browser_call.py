"""A test call from the supervisor console: the browser is the caller (``/ws/console/call/``).

The same consumer as a FreeSWITCH fork (voice.consumers.ForkConsumer): metadata first,
then binary L16, TOM answering in the jambonz stream protocol
(voice.protocols.adapters.browser). Only who may connect differs: not a token minted by
the dialplan but the supervisor's Django session (channels' ``AuthMiddlewareStack``) and
a page of this site (the Origin, checked in voice.routing), and the call's uuid is made
here, so the browser can neither attach to a live call nor pass for a real caller.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async

from voice.auth import AuthError, ForkIdentity
from voice.consumers import ForkConsumer
from voice.protocols.adapters import ForkProtocol
from voice.protocols.adapters.browser import BrowserStreamProtocol

logger = logging.getLogger(__name__)

# What a supervisor needs to see calls in the console (calls.console.views): placing a
# test call shows one there, so the same permission places it.
PERMISSION = "calls.view_call"


def _may_call(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(PERMISSION))


class BrowserCallConsumer(ForkConsumer):
    """A supervisor's test call: session-authenticated, always synthetic, server-named."""

    route = "browser"

    async def connect(self) -> None:
        self.placed_uuid: str | None = None
        await super().connect()
        if self.placed_uuid is not None and not self.closing:
            # Not in the jambonz protocol: the page links the call's console page with it.
            await self.send(text_data=json.dumps(
                {"type": "tomCall", "data": {"uuid": self.placed_uuid}}))

    def protocol_choose(self) -> ForkProtocol:
        return BrowserStreamProtocol()

    async def authenticate(self) -> ForkIdentity:
        """An active staff user who may view calls; the call gets a fresh uuid."""
        user = self.scope.get("user")
        if user is None:
            # A routing mistake, not a visitor: this route is wrapped in AuthMiddlewareStack.
            raise AuthError("no_session_middleware")
        if not user.is_authenticated:
            raise AuthError("anonymous")
        if not await database_sync_to_async(_may_call)(user):
            raise AuthError("not_staff")
        call_uuid = self.placed_uuid = str(uuid.uuid4())
        logger.info("browser_call.placed", extra={"user_id": user.pk, "call_uuid": call_uuid})
        return ForkIdentity(method="session", call_uuid=call_uuid)
