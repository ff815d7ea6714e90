"""System checks refuse placeholder secrets once DEBUG is off."""

from __future__ import annotations

import re
import subprocess

import pytest
from django.core.checks import Error, Warning, run_checks
from django.test import override_settings

from conftest import REPO

GOOD = "x" * 48


def _tom_messages() -> dict[str, type]:
    return {m.id: type(m) for m in run_checks(tags=["security"]) if m.id.startswith("tomsite.")}


@pytest.mark.parametrize(("name", "check_id"), [
    ("SECRET_KEY", "tomsite.E001"),
    ("TOM_PHONE_HASH_KEY", "tomsite.E002"),
    ("TOM_JWT_SECRET", "tomsite.E003"),
])
@pytest.mark.parametrize("value", ["CHANGE_ME", "", "  ", "change-me-please"])
def test_placeholder_secret_is_an_error_with_debug_off(name: str, check_id: str,
                                                       value: str) -> None:
    with override_settings(DEBUG=False, **{name: value}):
        assert _tom_messages().get(check_id) is Error


@pytest.mark.parametrize("name", ["SECRET_KEY", "TOM_PHONE_HASH_KEY", "TOM_JWT_SECRET"])
def test_placeholder_secret_is_only_a_warning_with_debug_on(name: str) -> None:
    with override_settings(DEBUG=True, **{name: "CHANGE_ME"}):
        messages = _tom_messages()
    assert Error not in messages.values()
    assert Warning in messages.values()


def test_real_secrets_pass() -> None:
    with override_settings(DEBUG=False, SECRET_KEY=GOOD, TOM_PHONE_HASH_KEY=GOOD,
                           TOM_JWT_SECRET=GOOD, TOM_SECRETS_GENERATED=[]):
        assert _tom_messages() == {}


def test_optional_secret_left_as_placeholder_is_an_error() -> None:
    with override_settings(TOM_METRICS_TOKEN="CHANGE_ME"):
        assert _tom_messages().get("tomsite.E004") is Error
    with override_settings(TOM_METRICS_TOKEN=""):  # empty turns the feature off: fine
        assert "tomsite.E004" not in _tom_messages()


def test_short_phone_hash_key_is_an_error() -> None:
    with override_settings(DEBUG=False, TOM_PHONE_HASH_KEY="short-key"):
        assert _tom_messages().get("tomsite.E005") is Error


def test_current_key_among_old_keys_is_an_error() -> None:
    with override_settings(TOM_PHONE_HASH_KEY=GOOD, TOM_PHONE_HASH_OLD_KEYS=[GOOD]):
        assert _tom_messages().get("tomsite.E006") is Error


def test_generated_secrets_with_a_server_database_warn() -> None:
    with override_settings(TOM_SECRETS_GENERATED=["SECRET_KEY"], TOM_EMBEDDED=False):
        assert _tom_messages().get("tomsite.W002") is Warning
    with override_settings(TOM_SECRETS_GENERATED=["SECRET_KEY"], TOM_EMBEDDED=True):
        assert "tomsite.W002" not in _tom_messages()


@pytest.mark.parametrize(("setting", "check_id"), [("TOM_FORK_TOKEN_SECRET", "tomsite.E007"),
                                                   ("TOM_METRICS_TOKEN", "tomsite.E008")])
@pytest.mark.parametrize("proxy", [{"TOM_BEHIND_PROXY": True},
                                   {"TOM_BEHIND_PROXY": True, "TOM_TRUSTED_PROXIES": ["10.0.0.1"]}])
def test_behind_a_proxy_the_endpoint_secrets_are_required(setting: str, check_id: str,
                                                          proxy: dict[str, object]) -> None:
    secrets = {"TOM_FORK_TOKEN_SECRET": GOOD, "TOM_METRICS_TOKEN": GOOD}
    with override_settings(**proxy, **{**secrets, setting: ""}):
        assert _tom_messages().get(check_id) is Error
    with override_settings(**proxy, **secrets):
        assert check_id not in _tom_messages()
    with override_settings(TOM_BEHIND_PROXY=False, **{**secrets, setting: ""}):
        assert check_id not in _tom_messages()  # not behind a proxy: empty turns it off


def test_malformed_address_lists_are_errors() -> None:
    for name in ("TOM_TRUSTED_PROXIES", "TOM_FORK_TOKEN_ALLOWED_IPS", "TOM_METRICS_ALLOWED_IPS"):
        with override_settings(**{name: ["10.0.0.1", "proxy.internal"]}):
            assert _tom_messages().get("tomsite.E009") is Error, name
    assert "tomsite.E009" not in _tom_messages()


def test_daphne_proxy_headers_flag_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["daphne", "--proxy-headers", "tomsite.asgi:application"])
    assert _tom_messages().get("tomsite.W003") is Warning
    secrets = {"TOM_FORK_TOKEN_SECRET": GOOD, "TOM_METRICS_TOKEN": GOOD}
    with override_settings(TOM_TRUSTED_PROXIES=["10.0.0.1"], TOM_BEHIND_PROXY=True, **secrets):
        # daphne would believe the client-written left-most address before TOM sees it.
        assert _tom_messages().get("tomsite.E010") is Error
    monkeypatch.setattr("sys.argv", ["daphne", "tomsite.asgi:application"])
    assert "tomsite.W003" not in _tom_messages()


def _production_env(clean_env: dict[str, str]) -> dict[str, str]:
    return {
        **clean_env,
        "DEBUG": "false",
        "SECRET_KEY": "s" * 50 + "Q9#kz!",
        "TOM_PHONE_HASH_KEY": "p" * 48,
        "TOM_JWT_SECRET": "j" * 48,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ALLOWED_HOSTS": "tom.example.internal",
        "TOM_HTTPS": "true",
        "TOM_BEHIND_PROXY": "true",
        "TOM_TRUSTED_PROXIES": "127.0.0.1",
        # Behind a proxy these endpoints answer only holders of their secret.
        "TOM_FORK_TOKEN_SECRET": "f" * 48,
        "TOM_METRICS_TOKEN": "m" * 48,
        # Models are checked by --deploy too; a provider deployment needs none on disk.
        "TOM_SESSION_BACKEND": "provider",
        "TOM_LLM_BACKEND": "openai",
    }


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else "python",
         "manage.py", "check", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_check_deploy_passes_with_a_proper_production_env(clean_env: dict[str, str]) -> None:
    result = _check(_production_env(clean_env), "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_on_a_placeholder(clean_env: dict[str, str]) -> None:
    env = {**_production_env(clean_env), "TOM_JWT_SECRET": "CHANGE_ME"}
    result = _check(env, "--deploy")
    assert result.returncode == 1
    assert "tomsite.E003" in result.stderr


def test_env_sample_copied_verbatim_is_refused(clean_env: dict[str, str]) -> None:
    text = (REPO / "env.sample").read_text()
    env = {**clean_env, **dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))}
    env["TOM_DATA_DIR"] = clean_env["TOM_DATA_DIR"]
    env["TOM_CHROMA_DIR"] = env["TOM_RECORDING_DIR"] = clean_env["TOM_DATA_DIR"]
    result = _check(env)
    assert result.returncode == 1
    for check_id in ("tomsite.E001", "tomsite.E002", "tomsite.E003", "tomsite.E004"):
        assert check_id in result.stderr
