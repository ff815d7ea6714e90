"""Secrets for the embedded default.

A newcomer runs TOM with no environment at all. Rather than ship a usable
default secret (which would end up in production), the first start writes
random secrets to ``TOM_DATA_DIR/secrets.json`` (mode 0600) and every later
process on the same data folder reads the same ones, so the web server, the
Celery worker and beat hash phone numbers and sign tokens alike. Production
sets the variables; ``tomsite.W002`` warns when a server database is used with
generated secrets, since another host would generate different ones.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

GENERATED_NAMES = ("SECRET_KEY", "TOM_PHONE_HASH_KEY", "TOM_JWT_SECRET")


def local_secrets(data_dir: Path) -> dict[str, str]:
    """Return the generated secrets for ``data_dir``, creating them on first use."""
    path = data_dir / "secrets.json"
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        stored = {}
    except (OSError, ValueError):
        # A corrupt or unreadable file must not be silently replaced: new keys
        # would orphan every stored phone hash. Fail loudly instead.
        raise RuntimeError(f"{path} exists but cannot be read as JSON; fix or remove it") from None
    missing = [name for name in GENERATED_NAMES if not stored.get(name)]
    if not missing:
        return stored
    for name in missing:
        stored[name] = secrets.token_urlsafe(48)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename so a concurrent reader never sees half a file;
    # O_EXCL on the temp name keeps two first starts from interleaving.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(stored, fh)
    if path.exists():
        # Completing an older file: keep what it had (merged above), replace atomically.
        os.replace(tmp, path)
        return stored
    try:
        os.link(tmp, path)  # fails if another process won the race to the first start
    except FileExistsError:
        return json.loads(path.read_text())
    finally:
        tmp.unlink(missing_ok=True)
    return stored
