"""Settings come from the environment: the embedded default with none, servers with URLs."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "db_engine": s.DATABASES["default"]["ENGINE"],
    "db_name": str(s.DATABASES["default"]["NAME"]),
    "layer": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": s.CACHES["default"]["BACKEND"],
    "broker": s.CELERY_BROKER_URL,
    "egress": s.ALLOW_EGRESS,
    "debug": s.DEBUG,
    "embedded": s.TOM_EMBEDDED,
    "generated": s.TOM_SECRETS_GENERATED,
    "phone_key": s.TOM_PHONE_HASH_KEY,
    "secret_key": s.SECRET_KEY,
    "cache_options": s.CACHES["default"].get("OPTIONS", {}),
    "layer_hosts": s.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts", []),
    "behind_proxy": s.TOM_BEHIND_PROXY,
    "trusted_proxies": s.TOM_TRUSTED_PROXIES,
    "proxy_ssl_header": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
}))
"""


def _probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE], cwd=REPO,
                          env={**env, "DJANGO_SETTINGS_MODULE": "tomsite.settings"},
                          capture_output=True, text=True, timeout=60, check=False)


def _settings(env: dict[str, str]) -> dict[str, object]:
    result = _probe(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_environment_gives_the_embedded_default(clean_env: dict[str, str]) -> None:
    found = _settings(clean_env)
    data_dir = Path(clean_env["TOM_DATA_DIR"])
    assert found["db_engine"] == "django.db.backends.sqlite3"
    assert found["db_name"] == str(data_dir / "tom.sqlite3")
    assert found["layer"] == "channels.layers.InMemoryChannelLayer"
    assert found["cache"].endswith("LocMemCache")
    assert found["broker"] == "filesystem://localhost//"
    assert (data_dir / "celery" / "queue").is_dir()
    assert found["egress"] is False and found["debug"] is False and found["embedded"] is True


def test_urls_switch_to_postgres_and_redis(clean_env: dict[str, str]) -> None:
    found = _settings({**clean_env, "DATABASE_URL": "postgres://tom@db.internal:5432/tom",
                       "REDIS_URL": "redis://cache.internal:6379/2"})
    assert found["db_engine"] == "django.db.backends.postgresql"
    assert found["db_name"] == "tom"
    assert found["layer"] == "channels_redis.core.RedisChannelLayer"
    assert found["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert found["broker"] == "redis://cache.internal:6379/2"
    assert found["embedded"] is False


def test_generated_secrets_are_private_and_shared_by_every_process(
        clean_env: dict[str, str]) -> None:
    first, second = _settings(clean_env), _settings(clean_env)
    assert first["generated"] == ["SECRET_KEY", "TOM_PHONE_HASH_KEY", "TOM_JWT_SECRET"]
    assert first["phone_key"] == second["phone_key"] and first["secret_key"] == second["secret_key"]
    secrets_file = Path(clean_env["TOM_DATA_DIR"]) / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_secrets_from_the_environment_win(clean_env: dict[str, str]) -> None:
    found = _settings({**clean_env, "SECRET_KEY": "k" * 50, "TOM_PHONE_HASH_KEY": "p" * 40,
                       "TOM_JWT_SECRET": "j" * 40})
    assert found["generated"] == [] and found["phone_key"] == "p" * 40
    assert not (Path(clean_env["TOM_DATA_DIR"]) / "secrets.json").exists()


def test_a_malformed_value_is_a_clear_error(clean_env: dict[str, str]) -> None:
    for name, value, expected in [
        ("TOM_LLM_MAX_TOKENS", "lots", "TOM_LLM_MAX_TOKENS must be an integer, got 'lots'"),
        ("ALLOW_EGRESS", "maybe", "ALLOW_EGRESS must be a boolean"),
        ("TOM_SESSION_BACKEND", "cloud", "TOM_SESSION_BACKEND must be one of local, provider"),
        ("TOM_STT_MODELS", "de:base", "TOM_STT_MODELS must be key=value pairs separated by "
                                      "commas, got 'de:base'"),
    ]:
        result = _probe({**clean_env, name: value})
        assert result.returncode != 0
        assert expected in result.stderr


def test_a_corrupt_secrets_file_is_not_silently_replaced(clean_env: dict[str, str]) -> None:
    data_dir = Path(clean_env["TOM_DATA_DIR"])
    data_dir.mkdir(parents=True)
    (data_dir / "secrets.json").write_text("{not json")
    result = _probe(clean_env)
    assert result.returncode != 0 and "cannot be read as JSON" in result.stderr
    assert (data_dir / "secrets.json").read_text() == "{not json"


def test_redis_cache_and_layer_time_out_instead_of_hanging(clean_env: dict[str, str]) -> None:
    found = _settings({**clean_env, "REDIS_URL": "redis://cache.internal:6379/2"})
    assert found["cache_options"] == {"socket_connect_timeout": 2.0, "socket_timeout": 3.0}
    # The layer's read timeout stays above channels-redis' 5 s BZPOPMIN block.
    assert found["layer_hosts"] == [{"address": "redis://cache.internal:6379/2",
                                     "socket_timeout": 30, "socket_connect_timeout": 2.0}]
    tuned = _settings({**clean_env, "REDIS_URL": "redis://cache.internal:6379/2",
                       "TOM_REDIS_CONNECT_TIMEOUT_S": "0.5", "TOM_REDIS_TIMEOUT_S": "1"})
    assert tuned["cache_options"] == {"socket_connect_timeout": 0.5, "socket_timeout": 1.0}


def test_trusted_proxies_mean_behind_a_proxy(clean_env: dict[str, str]) -> None:
    plain = _settings(clean_env)
    assert plain["behind_proxy"] is False and plain["trusted_proxies"] == []
    listed = _settings({**clean_env, "TOM_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16"})
    assert listed["behind_proxy"] is True
    assert listed["trusted_proxies"] == ["10.0.0.1", "10.1.0.0/16"]
    # X-Forwarded-Proto is believed only when TOM_BEHIND_PROXY says the proxy sets it.
    assert listed["proxy_ssl_header"] is None
    flagged = _settings({**clean_env, "TOM_BEHIND_PROXY": "true"})
    assert flagged["behind_proxy"] is True
    assert flagged["proxy_ssl_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_an_empty_prometheus_multiproc_dir_means_unset(
        clean_env: dict[str, str], tmp_path: Path) -> None:
    # env.sample leaves PROMETHEUS_MULTIPROC_DIR empty; prometheus_client would take the
    # variable's mere presence as multiprocess mode and write *.db files where it runs.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    code = ("import django; django.setup()\n"
            "from voice import metrics\n"
            "metrics.CALLS.inc()\n"
            "from prometheus_client import values\n"
            "print(values.ValueClass.__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True,
                          text=True, check=False, timeout=60,
                          env={**clean_env, "PROMETHEUS_MULTIPROC_DIR": "",
                               "DJANGO_SETTINGS_MODULE": "tomsite.settings"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MutexValue"  # the in-process value, not the file-backed one
    assert list(workdir.iterdir()) == []
