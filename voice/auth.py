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
import logging
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

NONCE_PREFIX = "tom:fork-jti:"
# RFC 8725 sections 3.8 and 3.9: a token with no audience could be one minted for another
# service; with no subject it could attach to any live call (the metadata's uuid must
# equal it, voice.protocols.metadata.parse_call_start).
REQUIRED_CLAIMS = ("aud", "exp", "jti", "sub")
# RFC 7518 section 3.2: an HS256 key at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32


class AuthError(Exception):
    """The handshake is refused (HTTP 403); ``reason`` is a metric label, never caller data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ForkIdentity:
    method: str  # "jwt" or "basic"
    call_uuid: str | None = None  # the token's subject (always, for a JWT); None for basic
    jti: str | None = None


class JwtKeyError(RuntimeError):
    """The configured key cannot be used (missing, unreadable, not a key of that kind)."""


@lru_cache(maxsize=8)
def _load_rsa_key(path: str, *, private: bool) -> Any:
    if not path:
        raise JwtKeyError("no key file is configured")
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise JwtKeyError(f"{path} cannot be read ({exc.strerror})") from None
    key: object
    try:
        if private:
            key = serialization.load_pem_private_key(pem, password=None)
            expected: type = rsa.RSAPrivateKey
        else:
            key = serialization.load_pem_public_key(pem)
            expected = rsa.RSAPublicKey
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise JwtKeyError(f"{path} holds no PEM key (or one with a password)") from None
    if not isinstance(key, expected):
        raise JwtKeyError(f"{path} holds no RSA {'private' if private else 'public'} key")
    return key


def jwt_signing_key() -> Any:
    """The key that mints tokens; ``JwtKeyError`` when it cannot be had."""
    if settings.TOM_JWT_ALGORITHM == "RS256":
        return _load_rsa_key(settings.TOM_JWT_PRIVATE_KEY, private=True)
    return str(settings.TOM_JWT_SECRET)


def jwt_verifying_key() -> Any:
    """The key that checks tokens; ``JwtKeyError`` when it cannot be had."""
    if settings.TOM_JWT_ALGORITHM == "RS256":
        return _load_rsa_key(settings.TOM_JWT_PUBLIC_KEY, private=False)
    return str(settings.TOM_JWT_SECRET)


def fork_token_mint(*, call_uuid: str, ttl_s: int | None = None) -> str:
    """A short-lived, single-use token for one fork connection: the call ``call_uuid``.

    The subject is required: a token that names no call could attach to any live one.
    """
    if not call_uuid:
        raise ValueError("a fork token must name its call (call_uuid)")
    now = int(time.time())
    claims: dict[str, object] = {
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + (ttl_s if ttl_s is not None else settings.TOM_JWT_TTL_S),
        "aud": settings.TOM_JWT_AUDIENCE,
        "sub": call_uuid,
    }
    return jwt.encode(claims, jwt_signing_key(), algorithm=settings.TOM_JWT_ALGORITHM)


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
        key = jwt_verifying_key()
    except JwtKeyError as exc:
        logger.error("fork.jwt_key_unusable", extra={"problem": str(exc)})
        raise AuthError("misconfigured") from None
    try:
        # RFC 8725: one algorithm, fixed here (never the token's own "alg", section 3.1),
        # and every claim we rely on present and checked (sections 3.8, 3.9).
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.TOM_JWT_ALGORITHM],
            audience=settings.TOM_JWT_AUDIENCE,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": True},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("wrong_audience") from None
    except jwt.MissingRequiredClaimError:
        raise AuthError("missing_claim") from None
    except jwt.PyJWTError:
        raise AuthError("bad_token") from None
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise AuthError("bad_token")
    return claims


async def _claim_nonce(jti: str, exp: int) -> bool:
    """Remember ``jti`` until the token expires (and at least the replay window).

    Fails closed: a nonce store that cannot be reached refuses the token, since one
    that cannot be remembered could be replayed. Live calls never come here.
    """
    ttl = max(settings.TOM_JWT_NONCE_TTL_S, exp - int(time.time()) + 1)
    try:
        # cache.add is SET NX on Redis (shared by every process), atomic in-process otherwise.
        return bool(await cache.aadd(NONCE_PREFIX + jti, 1, timeout=ttl))
    except Exception as exc:  # any backend's failure (redis-py raises its own ConnectionError)
        logger.warning("fork.nonce_store_unavailable", extra={"error": type(exc).__name__})
        raise AuthError("nonce_store_unavailable") from None


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
        return ForkIdentity(method="jwt", call_uuid=str(claims["sub"]), jti=jti)
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
