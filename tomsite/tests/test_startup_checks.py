"""daphne, the Celery worker and beat run the system checks at start and refuse to run
on errors (before this change only manage.py commands ran them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import Error, Warning
from django.test import override_settings

from conftest import REPO
from tomsite.startup import StartupRefused, startup_checks_run
from tomsite.tests.daphne import daphne_argv, daphne_running

# A deployment with real secrets and DEBUG off, which may start.
GOOD = {"DEBUG": "false", "SECRET_KEY": "k" * 50, "TOM_PHONE_HASH_KEY": "p" * 48,
        "TOM_JWT_SECRET": "j" * 48}


def _run(argv: list[str], env: dict[str, str], *, timeout: float = 90
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "check_id"), [("SECRET_KEY", "tomsite.E001"),
                                                ("TOM_JWT_SECRET", "tomsite.E003")])
def test_daphne_refuses_to_serve_with_a_placeholder_secret(
        clean_env: dict[str, str], free_port: int, name: str, check_id: str) -> None:
    env = {**clean_env, **GOOD, name: "CHANGE_ME"}
    result = _run(daphne_argv(port=free_port), env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "TOM web refuses to start" in output and check_id in output
    assert f"{name} is empty or still 'CHANGE_ME'" in output


@pytest.mark.slow
def test_daphne_refuses_a_short_jwt_secret_and_a_proxy_without_secrets(
        clean_env: dict[str, str], free_port: int) -> None:
    env = {**clean_env, **GOOD, "TOM_JWT_SECRET": "only-twenty-bytes-ok",
           "TOM_TRUSTED_PROXIES": "10.0.0.1"}
    result = _run(daphne_argv(port=free_port), env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for check_id in ("voice.E004", "tomsite.E007", "tomsite.E008"):
        assert check_id in output


@pytest.mark.slow
def test_daphne_with_debug_on_serves_despite_placeholders(
        clean_env: dict[str, str], free_port: int, tmp_path: Path) -> None:
    env = {**clean_env, "DEBUG": "true", "SECRET_KEY": "CHANGE_ME"}
    with daphne_running(env=env, port=free_port, log=tmp_path / "daphne.log") as server:
        assert server.process.poll() is None
    assert "tomsite.W101" in (tmp_path / "daphne.log").read_text()  # said, not fatal


@pytest.mark.slow
def test_celery_worker_refuses_to_start_with_a_placeholder_secret(
        clean_env: dict[str, str]) -> None:
    env = {**clean_env, **GOOD, "TOM_JWT_SECRET": "CHANGE_ME", "TOM_CELERY_METRICS_PORT": "0"}
    result = _run([sys.executable, "-m", "celery", "-A", "tomsite", "worker", "--pool=solo",
                   "-l", "INFO"], env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "TOM worker refuses to start" in output and "tomsite.E003" in output
    assert " ready." not in output  # never got to consume a task


@pytest.mark.slow
def test_celery_beat_refuses_to_start_with_a_placeholder_secret(
        clean_env: dict[str, str], tmp_path: Path) -> None:
    env = {**clean_env, **GOOD, "SECRET_KEY": "CHANGE_ME"}
    # The file scheduler keeps this test off the database; the check hook is the same.
    result = _run([sys.executable, "-m", "celery", "-A", "tomsite", "beat", "-l", "INFO",
                   "--scheduler", "celery.beat:PersistentScheduler",
                   f"--schedule={tmp_path / 'beat-schedule'}", "--pidfile="], env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "TOM beat refuses to start" in output and "tomsite.E001" in output


def test_startup_checks_pass_on_the_test_settings_and_return_warnings() -> None:
    warnings = startup_checks_run(component="web")
    assert all(isinstance(m, Warning) for m in warnings)


def test_startup_refusal_names_each_error_and_respects_silencing() -> None:
    with override_settings(DEBUG=False, TOM_JWT_SECRET="CHANGE_ME"), \
            pytest.raises(StartupRefused) as caught:
        startup_checks_run(component="worker")
    assert caught.value.code != 0
    text = str(caught.value.code)
    assert text.startswith("TOM worker refuses to start: 1 system check error(s).")
    assert "tomsite.E003: TOM_JWT_SECRET is empty or still 'CHANGE_ME'." in text
    with override_settings(DEBUG=False, TOM_JWT_SECRET="CHANGE_ME",
                           SILENCED_SYSTEM_CHECKS=["tomsite.E003"]):
        assert not any(isinstance(m, Error) for m in startup_checks_run(component="worker"))
