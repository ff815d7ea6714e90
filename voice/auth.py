"""Who may open a fork socket: a single-use JWT, or HTTP basic auth when configured.

mod_audio_fork can send HTTP basic auth (channel variables
``MOD_AUDIO_BASIC_AUTH_USERNAME``/``_PASSWORD``, sent as ``Authorization: Basic``;
drachtio ``lws_glue.cpp fork_data_init()``, ``audio_pipe.cpp`` APPEND_HANDSHAKE_HEADER)
and passes the URL's query string through unchanged (``lws_glue.cpp parse_ws_uri()``),
so a token minted by the dialplan rides in ``?token=``. mod_audio_stream can send any
header from ``STREAM_EXTRA_HEADERS`` (``audio_streamer_glue.cpp`` AudioStreamer ctor),
so ``Authorization: Bearer`` works there. See voice/protocols/SOURCES.md.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs

import jwt
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import constant_time_compare

NONCE_PREFIX = "tom:fork-jti:"


class AuthError(Exception):
    """The handshake is refused (HTTP 403); ``reason`` is a metric label, never caller data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ForkIdentity:
    method: str  # "jwt" or "basic"
    call_uuid: str | None = None  # the token's subject, when it names the call
    jti: str | None = None


@lru_cache(maxsize=4)
def _read_key(path: str) -> str:
    return Path(path).read_text()


def _signing_key() -> str:
    if settings.TOM_JWT_ALGORITHM == "RS256":
        if not settings.TOM_JWT_PRIVATE_KEY:
            raise RuntimeError("TOM_JWT_PRIVATE_KEY is needed to mint RS256 tokens")
        return _read_key(settings.TOM_JWT_PRIVATE_KEY)
    return str(settings.TOM_JWT_SECRET)


def _verifying_key() -> str:
    if settings.TOM_JWT_ALGORITHM == "RS256":
        return _read_key(settings.TOM_JWT_PUBLIC_KEY)
    return str(settings.TOM_JWT_SECRET)


def fork_token_mint(*, call_uuid: str | None = None, ttl_s: int | None = None) -> str:
    """A short-lived, single-use token for one fork connection."""
    now = int(time.time())
    claims: dict[str, object] = {
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + (ttl_s if ttl_s is not None else settings.TOM_JWT_TTL_S),
        "aud": settings.TOM_JWT_AUDIENCE,
    }
    if call_uuid:
        claims["sub"] = call_uuid
    return jwt.encode(claims, _signing_key(), algorithm=settings.TOM_JWT_ALGORITHM)


def _token_from(query_string: bytes, headers: dict[bytes, bytes]) -> str | None:
    tokens = parse_qs(query_string.decode("latin-1")).get("token")
    if tokens:
        return tokens[0]
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _basic_credentials(headers: dict[bytes, bytes]) -> tuple[str, str] | None:
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("bad_basic") from None
    if not sep:
        raise AuthError("bad_basic")
    return user, password


def _decode(token: str) -> dict[str, object]:
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        return jwt.decode(
            token,
            _verifying_key(),
            algorithms=[settings.TOM_JWT_ALGORITHM],  # never trust the token's own "alg"
            audience=settings.TOM_JWT_AUDIENCE,
            options={"require": ["exp", "jti"], "verify_aud": "aud" in unverified},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("wrong_audience") from None
    except jwt.MissingRequiredClaimError:
        raise AuthError("missing_claim") from None
    except jwt.PyJWTError:
        raise AuthError("bad_token") from None


async def _claim_nonce(jti: str, exp: int) -> bool:
    """Remember ``jti`` until the token expires (and at least the replay window)."""
    ttl = max(settings.TOM_JWT_NONCE_TTL_S, exp - int(time.time()) + 1)
    # cache.add is SET NX on Redis (shared by every process) and atomic in-process otherwise.
    return bool(await cache.aadd(NONCE_PREFIX + jti, 1, timeout=ttl))


async def fork_authenticate(*, query_string: bytes,
                            headers: list[tuple[bytes, bytes]]) -> ForkIdentity:
    """Check the handshake's credentials; raise ``AuthError`` to refuse it."""
    header_map = {name.lower(): value for name, value in headers}
    token = _token_from(query_string, header_map)
    if token:
        claims = _decode(token)
        jti = str(claims["jti"])
        if not await _claim_nonce(jti, int(claims["exp"])):  # type: ignore[call-overload]
            raise AuthError("replayed")
        sub = claims.get("sub")
        return ForkIdentity(method="jwt", call_uuid=str(sub) if sub else None, jti=jti)
    credentials = _basic_credentials(header_map)
    user, password = settings.TOM_FORK_BASIC_AUTH_USERNAME, settings.TOM_FORK_BASIC_AUTH_PASSWORD
    if credentials is not None:
        if not (user and password):
            raise AuthError("basic_not_configured")
        if constant_time_compare(credentials[0], user) & constant_time_compare(
            credentials[1], password
        ):
            return ForkIdentity(method="basic")
        raise AuthError("bad_basic")
    raise AuthError("missing")
