from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import cache
from django.test import Client, override_settings

from voice.auth import NONCE_PREFIX, AuthError, fork_authenticate, fork_token_mint


async def _auth(token: str) -> object:
    return await fork_authenticate(query_string=f"token={token}".encode(), headers=[])


async def test_minted_token_is_accepted_once() -> None:
    token = fork_token_mint(call_uuid="call-1")
    identity = await _auth(token)
    assert identity.call_uuid == "call-1" and identity.method == "jwt"  # type: ignore[attr-defined]
    with pytest.raises(AuthError) as caught:
        await _auth(token)
    assert caught.value.reason == "replayed"


async def test_bearer_header_works_like_the_query_string() -> None:
    token = fork_token_mint()
    identity = await fork_authenticate(query_string=b"",
                                       headers=[(b"authorization", f"Bearer {token}".encode())])
    assert identity.method == "jwt"


@pytest.mark.redis
@pytest.mark.django_db
async def test_nonce_lives_in_redis_for_at_least_five_minutes() -> None:
    import redis

    token = fork_token_mint()
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    await _auth(token)
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = client.keys(f"*{NONCE_PREFIX}{jti}")
    assert len(keys) == 1
    assert client.ttl(keys[0]) >= 300
    await cache.adelete(NONCE_PREFIX + jti)


async def test_expiry_audience_and_required_claims() -> None:
    def make(**claims: object) -> str:
        base = {"jti": uuid.uuid4().hex, "exp": int(time.time()) + 60, "aud": "tom-fork"}
        base.update(claims)
        return jwt.encode({k: v for k, v in base.items() if v is not None},
                          settings.TOM_JWT_SECRET, algorithm="HS256")

    for claims, reason in [({"exp": int(time.time()) - 1}, "expired"),
                           ({"aud": "other"}, "wrong_audience"),
                           ({"jti": None}, "missing_claim"), ({"exp": None}, "missing_claim")]:
        with pytest.raises(AuthError) as caught:
            await _auth(make(**claims))
        assert caught.value.reason == reason, claims
    assert (await _auth(make(aud=None))).method == "jwt"  # type: ignore[attr-defined]


async def test_rs256_and_no_algorithm_confusion(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "fork.key"
    public = tmp_path / "fork.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with override_settings(TOM_JWT_ALGORITHM="RS256", TOM_JWT_PRIVATE_KEY=str(private),
                           TOM_JWT_PUBLIC_KEY=str(public)):
        assert (await _auth(fork_token_mint())).method == "jwt"  # type: ignore[attr-defined]
        # An HS256 token "signed" with the public key must not pass as RS256.
        forged = jwt.encode({"jti": "f", "exp": int(time.time()) + 60},
                            settings.TOM_JWT_SECRET, algorithm="HS256")
        with pytest.raises(AuthError) as caught:
            await _auth(forged)
        assert caught.value.reason == "bad_token"


async def test_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode({"jti": "u", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(AuthError):
        await _auth(unsigned)


def test_token_endpoint_allows_configured_addresses_or_the_secret() -> None:
    client = Client()
    response = client.get("/fork/token", {"uuid": "abc"})  # 127.0.0.1 is allowed by default
    assert response.status_code == 200
    claims = jwt.decode(response.content.decode(), settings.TOM_JWT_SECRET,
                        algorithms=["HS256"], audience="tom-fork")
    assert claims["sub"] == "abc" and claims["exp"] - time.time() <= settings.TOM_JWT_TTL_S
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/fork/token", {"uuid": "abc"}).status_code == 403
    with override_settings(TOM_FORK_TOKEN_SECRET="shared-" + "s" * 30):
        assert remote.get("/fork/token", {"uuid": "abc"},
                          headers={"X-Tom-Token-Secret": "shared-" + "s" * 30}).status_code == 200
        assert remote.get("/fork/token", {"secret": "wrong"}).status_code == 403
    with override_settings(TOM_FORK_TOKEN_ALLOWED_IPS=["10.1.0.0/16"]):
        assert Client(REMOTE_ADDR="10.1.2.3").get("/fork/token").status_code == 200


def test_metrics_endpoint_is_protected() -> None:
    assert Client().get("/metrics").status_code == 200
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/metrics").status_code == 403
    with override_settings(TOM_METRICS_TOKEN="scrape-" + "t" * 30):
        ok = remote.get("/metrics", headers={"Authorization": "Bearer scrape-" + "t" * 30})
        assert ok.status_code == 200 and b"tom_telephony_calls_total" in ok.content

