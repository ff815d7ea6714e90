"""Deployment checks for secrets and proxies (``tomsite.E001``…).

A placeholder or empty secret with DEBUG off is an error: ``env.sample`` ships
``CHANGE_ME`` so a copied file can never run in production unchanged. These run with
``manage.py check`` and whenever daphne, a Celery worker or beat starts (tomsite.startup).
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

PLACEHOLDER = "CHANGE_ME"
MIN_HASH_KEY_CHARS = 32

# (setting, check id, what depends on it)
_REQUIRED = (
    ("SECRET_KEY", "tomsite.E001", "sessions, CSRF and password resets"),
    ("TOM_PHONE_HASH_KEY", "tomsite.E002", "the HMAC that hides callers' phone numbers"),
    ("TOM_JWT_SECRET", "tomsite.E003", "the tokens FreeSWITCH presents on the fork socket"),
)
# Optional secrets: empty turns their feature off; the placeholder is never acceptable.
_OPTIONAL = (
    "FREESWITCH_ESL_PASSWORD",
    "TOM_FORK_BASIC_AUTH_PASSWORD",
    "TOM_FORK_TOKEN_SECRET",
    "TOM_METRICS_TOKEN",
    "TOM_PROVIDER_API_KEY",
)


def _setting(name: str) -> str:
    try:
        return str(getattr(settings, name, ""))
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        return ""


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is empty or still the env.sample placeholder."""
    cleaned = value.strip().upper().replace("-", "_")
    return not cleaned or PLACEHOLDER in cleaned or "CHANGEME" in cleaned


@register(Tags.security)
def check_required_secrets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, check_id, purpose in _REQUIRED:
        if not is_placeholder(_setting(name)):
            continue
        if settings.DEBUG:
            messages.append(
                Warning(
                    f"{name} is empty or a placeholder; acceptable with DEBUG on only.",
                    hint=f"It protects {purpose}. Set a random value before turning DEBUG off.",
                    id=check_id.replace(".E00", ".W10"),
                )
            )
        else:
            messages.append(
                Error(
                    f"{name} is empty or still {PLACEHOLDER!r}.",
                    hint=f"It protects {purpose}. Set it to a long random value, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
                    id=check_id,
                )
            )
    return messages


@register(Tags.security)
def check_optional_secrets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"{name} still holds the placeholder {PLACEHOLDER!r}.",
            hint="Set a real value, or leave it empty to turn the feature off.",
            id="tomsite.E004",
        )
        for name in _OPTIONAL
        if _setting(name).strip() and is_placeholder(_setting(name))
    ]


@register(Tags.security)
def check_phone_hash_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    current = _setting("TOM_PHONE_HASH_KEY")
    if not settings.DEBUG and not is_placeholder(current) and len(current) < MIN_HASH_KEY_CHARS:
        messages.append(
            Error(
                f"TOM_PHONE_HASH_KEY is shorter than {MIN_HASH_KEY_CHARS} characters.",
                hint="A short key lets anyone who reads the database guess numbers by brute force.",
                id="tomsite.E005",
            )
        )
    old = list(settings.TOM_PHONE_HASH_OLD_KEYS)
    if current in old or any(is_placeholder(key) for key in old):
        messages.append(
            Error(
                "TOM_PHONE_HASH_OLD_KEYS holds the current key or a placeholder.",
                hint="List only retired keys there, newest first (README: Rotating keys).",
                id="tomsite.E006",
            )
        )
    return messages


@register(Tags.security)
def check_generated_secrets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    generated = list(getattr(settings, "TOM_SECRETS_GENERATED", []))
    if generated and not settings.TOM_EMBEDDED:
        return [
            Warning(
                f"{', '.join(generated)} come from {settings.TOM_DATA_DIR / 'secrets.json'}.",
                hint="With a server database every host must share these secrets: set them "
                "in the environment, or phone hashes and tokens will differ between hosts.",
                id="tomsite.W002",
            )
        ]
    return []


@register(Tags.security)
def check_proxy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Behind a proxy the address allow-lists say nothing: the secrets must exist."""
    from voice.access import networks_malformed

    messages: list[CheckMessage] = []
    if settings.TOM_BEHIND_PROXY:
        for name, check_id, endpoint in (
            ("TOM_FORK_TOKEN_SECRET", "tomsite.E007", "/fork/token"),
            ("TOM_METRICS_TOKEN", "tomsite.E008", "/metrics"),
        ):
            if not _setting(name).strip():
                messages.append(Error(
                    f"TOM runs behind a proxy but {name} is empty.",
                    hint=f"Behind a proxy {endpoint} answers only holders of {name} (every "
                         "request comes from the proxy's address). Set it to a long random "
                         "value (README: Behind a reverse proxy).",
                    id=check_id))
    for name in ("TOM_TRUSTED_PROXIES", "TOM_FORK_TOKEN_ALLOWED_IPS", "TOM_METRICS_ALLOWED_IPS"):
        bad = networks_malformed(entries=getattr(settings, name))
        if bad:
            messages.append(Error(f"{name} holds entries that are no IP address or network: "
                                  f"{', '.join(map(repr, bad))}.",
                                  hint="List IPs or CIDRs, comma-separated (10.0.0.5,10.1.0.0/16).",
                                  id="tomsite.E009"))
    if "--proxy-headers" in sys.argv:  # this process is daphne, started with that flag
        if settings.TOM_TRUSTED_PROXIES:
            messages.append(Error(
                "daphne was started with --proxy-headers while TOM_TRUSTED_PROXIES is set.",
                hint="daphne would take the client-written left-most X-Forwarded-For address "
                     "before TOM sees the request. Remove --proxy-headers: TOM reads the "
                     "header itself, from the proxies in TOM_TRUSTED_PROXIES only.",
                id="tomsite.E010"))
        else:
            messages.append(Warning(
                "daphne was started with --proxy-headers; TOM ignores it.",
                hint="A request carrying X-Forwarded-For passes no address allow-list. Remove "
                     "the flag and list the proxy in TOM_TRUSTED_PROXIES instead.",
                id="tomsite.W003"))
    return messages
