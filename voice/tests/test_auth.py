"""Fork tokens per RFC 8725, their keys, the nonce store, and the token and metrics
endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import cache
from django.core.checks import run_checks
from django.test import Client, override_settings

from voice import metrics
from voice.auth import NONCE_PREFIX, AuthError, ForkIdentity, fork_authenticate, fork_token_mint
from voice.routing import websocket_urlpatterns


async def _auth(token: str) -> ForkIdentity:
    return await fork_authenticate(query_string=f"token={token}".encode(), headers=[])


async def _refused(token: str) -> str:
    with pytest.raises(AuthError) as caught:
        await _auth(token)
    return caught.value.reason


def _token(secret: str | None = None, **claims: object) -> str:
    """A token with every required claim, minus those given as None."""
    base: dict[str, object] = {"jti": uuid.uuid4().hex, "exp": int(time.time()) + 60,
                               "aud": "tom-fork", "sub": "call-1"}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None},
                      secret or settings.TOM_JWT_SECRET, algorithm="HS256")


def _refusals(reason: str) -> float:
    return metrics.HANDSHAKES_REFUSED.labels(reason=reason)._value.get()


async def test_minted_token_is_accepted_once() -> None:
    token = fork_token_mint(call_uuid="call-1")
    identity = await _auth(token)
    assert identity.call_uuid == "call-1" and identity.method == "jwt"
    assert await _refused(token) == "replayed"


async def test_bearer_header_works_like_the_query_string() -> None:
    token = fork_token_mint(call_uuid="call-2")
    identity = await fork_authenticate(query_string=b"",
                                       headers=[(b"authorization", f"Bearer {token}".encode())])
    assert identity.method == "jwt" and identity.call_uuid == "call-2"


def test_a_token_is_never_minted_without_its_call() -> None:
    with pytest.raises(ValueError, match="must name its call"):
        fork_token_mint(call_uuid="")


@pytest.mark.redis
@pytest.mark.django_db
async def test_nonce_lives_in_redis_for_at_least_five_minutes() -> None:
    import redis

    token = fork_token_mint(call_uuid="call-3")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    await _auth(token)
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = client.keys(f"*{NONCE_PREFIX}{jti}")
    assert len(keys) == 1
    assert client.ttl(keys[0]) >= 300
    await cache.adelete(NONCE_PREFIX + jti)


@pytest.mark.parametrize(("claims", "reason"), [
    ({"exp": int(time.time()) - 1}, "expired"),
    ({"aud": "other"}, "wrong_audience"),
    # RFC 8725: each claim TOM relies on must be there (before: aud and sub were optional).
    ({"aud": None}, "missing_claim"),
    ({"sub": None}, "missing_claim"),
    ({"exp": None}, "missing_claim"),
    ({"jti": None}, "missing_claim"),
    ({"sub": ""}, "bad_token"),
    ({"sub": 42}, "bad_token"),
])
async def test_each_required_claim_is_checked(claims: dict[str, object], reason: str) -> None:
    assert await _refused(_token(**claims)) == reason


async def test_a_token_signed_with_another_secret_is_refused() -> None:
    assert await _refused(_token(secret="not-the-secret-" + "x" * 32)) == "bad_token"


async def test_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode({"jti": "u", "exp": int(time.time()) + 60, "aud": "tom-fork",
                           "sub": "c"}, None, algorithm="none")
    assert await _refused(unsigned) == "bad_token"


@pytest.mark.django_db(transaction=True)
async def test_metadata_must_name_the_tokens_call() -> None:
    """A token for one call cannot open another: the metadata's uuid must be its sub."""
    token = fork_token_mint(call_uuid="call-owned")
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns),
                                         f"/ws/fork/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=json.dumps({"uuid": "someone-elses-call",
                                                     "sampleRate": 8000}))
    error = json.loads(await communicator.receive_from())
    assert error["type"] == "error" and "differs from the token's call" in error["data"]["message"]
    assert (await communicator.receive_output())["code"] == 1007
    await communicator.disconnect()


def _rsa_pair(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = folder / "fork.key", folder / "fork.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


async def test_rs256_and_no_algorithm_confusion(tmp_path: Path) -> None:
    private, public = _rsa_pair(tmp_path)
    with override_settings(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PRIVATE_KEY=str(private),
                           TOM_JWT_PUBLIC_KEY=str(public)):
        assert (await _auth(fork_token_mint(call_uuid="call-rs"))).method == "jwt"
        # An HS256 token "signed" with the public key must not pass as RS256 (PyJWT will
        # not sign with a PEM key as an HMAC secret, so the forgery is built by hand).
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps({"jti": "f", "exp": int(time.time()) + 60,
                                   "aud": "tom-fork", "sub": "call-rs"}).encode())
        signature = hmac.new(public.read_bytes(), f"{header}.{payload}".encode(),
                             hashlib.sha256).digest()
        assert await _refused(f"{header}.{payload}.{_b64(signature)}") == "bad_token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _ids(**overrides: object) -> set[str]:
    with override_settings(**overrides):
        return {m.id for m in run_checks(tags=["security"]) if m.is_serious()}


def test_short_hs256_secret_is_a_check_error() -> None:
    # RFC 7518 section 3.2: at least 256 bits for HS256.
    assert "voice.E004" in _ids(TOM_JWT_SECRET="s" * 31)
    assert "voice.E004" in _ids(TOM_JWT_SECRET="ä" * 15)  # 30 bytes, though 15 characters
    assert "voice.E004" not in _ids(TOM_JWT_SECRET="s" * 32)
    # A placeholder is tomsite.E003's to report, not this check's.
    assert "voice.E004" not in _ids(TOM_JWT_SECRET="CHANGE_ME", DEBUG=False)
    # RS256 does not use the secret.
    assert "voice.E004" not in _ids(TOM_JWT_SECRET="short", TOM_JWT_ALGORITHM="RS256",
                                    TOM_JWT_PUBLIC_KEY=str(Path(__file__)))


@pytest.fixture
def no_rs256_key(tmp_path: Path) -> list[str]:
    """RS256 public key settings that cannot work: unset, missing, not a key."""
    not_a_key = tmp_path / "fork.pub"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n")
    return ["", str(tmp_path / "missing.pub"), str(not_a_key), str(tmp_path)]


async def test_rs256_without_a_usable_public_key_refuses_not_crashes(
        no_rs256_key: list[str]) -> None:
    for path in no_rs256_key:
        assert "voice.E005" in _ids(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PUBLIC_KEY=path), path
        with override_settings(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PUBLIC_KEY=path):
            assert await _refused(_token()) == "misconfigured", path


@pytest.mark.django_db(transaction=True)
async def test_rs256_without_a_public_key_refuses_the_handshake() -> None:
    before = _refusals("misconfigured")
    with override_settings(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PUBLIC_KEY=""):
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns),
                                             f"/ws/fork/?token={_token()}")
        connected, _ = await communicator.connect()
    assert not connected  # closed before accept: daphne answers 403, never 500
    assert _refusals("misconfigured") == before + 1


def test_unusable_rs256_private_key_is_a_check_error_and_minting_answers_503(
        tmp_path: Path) -> None:
    _, public = _rsa_pair(tmp_path)
    with override_settings(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PUBLIC_KEY=str(public),
                           TOM_JWT_PRIVATE_KEY=str(tmp_path / "gone.key")):
        assert "voice.E006" in {m.id for m in run_checks(tags=["security"])}
        response = Client().get("/fork/token", {"uuid": "abc"})
    assert response.status_code == 503 and b"not configured" in response.content
    # No private key at all is fine for the checks: tokens may be minted elsewhere.
    assert "voice.E006" not in _ids(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PUBLIC_KEY=str(public),
                                    TOM_JWT_PRIVATE_KEY="")


@pytest.fixture
def dead_redis_port() -> Iterator[int]:
    """A loopback port where nothing listens (bound but never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_nonce_store_down_refuses_new_handshakes(dead_redis_port: int) -> None:
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": f"redis://127.0.0.1:{dead_redis_port}/14",
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    token = fork_token_mint(call_uuid="call-nonce")
    with override_settings(CACHES=caches):
        started = time.monotonic()
        assert await _refused(token) == "nonce_store_unavailable"
    assert time.monotonic() - started < 3


def test_token_endpoint_allows_configured_addresses_or_the_secret() -> None:
    client = Client()
    response = client.get("/fork/token", {"uuid": "abc"})  # 127.0.0.1 is allowed by default
    assert response.status_code == 200
    claims = jwt.decode(response.content.decode(), settings.TOM_JWT_SECRET,
                        algorithms=["HS256"], audience="tom-fork")
    assert claims["sub"] == "abc" and claims["exp"] - time.time() <= settings.TOM_JWT_TTL_S
    # A token that names no call is never minted.
    missing = client.get("/fork/token")
    assert missing.status_code == 400 and missing.content == b"uuid is required\n"
    assert client.get("/fork/token", {"uuid": "x" * 65}).status_code == 400
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/fork/token", {"uuid": "abc"}).status_code == 403
    with override_settings(TOM_FORK_TOKEN_SECRET="shared-" + "s" * 30):
        assert remote.get("/fork/token", {"uuid": "abc"},
                          headers={"X-Tom-Token-Secret": "shared-" + "s" * 30}).status_code == 200
        assert remote.get("/fork/token", {"uuid": "abc", "secret": "wrong"}).status_code == 403
    with override_settings(TOM_FORK_TOKEN_ALLOWED_IPS=["10.1.0.0/16"]):
        assert Client(REMOTE_ADDR="10.1.2.3").get("/fork/token",
                                                  {"uuid": "abc"}).status_code == 200


def test_behind_a_proxy_only_the_secret_mints() -> None:
    with override_settings(TOM_BEHIND_PROXY=True, TOM_FORK_TOKEN_SECRET="shared-" + "s" * 30):
        assert Client().get("/fork/token", {"uuid": "abc"}).status_code == 403
        assert Client().get("/fork/token", {"uuid": "abc", "secret": "shared-" + "s" * 30}
                            ).status_code == 200


def test_metrics_endpoint_is_protected() -> None:
    assert Client().get("/metrics").status_code == 200
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/metrics").status_code == 403
    # A client-written X-Forwarded-For opens nothing, even from an allowed address.
    assert Client().get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403
    with override_settings(TOM_METRICS_TOKEN="scrape-" + "t" * 30):
        ok = remote.get("/metrics", headers={"Authorization": "Bearer scrape-" + "t" * 30})
        assert ok.status_code == 200 and b"tom_telephony_calls_total" in ok.content
    with override_settings(TOM_BEHIND_PROXY=True):
        assert Client().get("/metrics").status_code == 403
