"""Typed readers for environment variables.

Every setting TOM reads from the environment goes through one of these functions
(or ``os.environ`` for the few that must be set before Django starts). The
``env.sample`` completeness test finds the names by reading the calls in the
source, so the first argument is always a string literal.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvError(ValueError):
    """An environment variable holds a value of the wrong shape."""


def env_str(name: str, default: str = "") -> str:
    """Return the variable's value, or ``default`` when it is unset."""
    return os.environ.get(name, default)


def env_is_set(name: str) -> bool:
    """Whether the variable is present at all (an empty value counts as set)."""
    return name in os.environ


def env_bool(name: str, default: bool = False) -> bool:
    """Parse ``1/true/yes/on`` and ``0/false/no/off``; anything else is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise EnvError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    """Parse an integer; an unparsable value is an error, not a silent default."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise EnvError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    """Parse a float; an unparsable value is an error, not a silent default."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw.strip())
    except ValueError:
        raise EnvError(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    """Split a comma-separated value into its non-empty, stripped items."""
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_map(name: str, default: str = "") -> dict[str, str]:
    """Parse ``key=value`` pairs separated by commas (``de=base,en=tiny.en``)."""
    result: dict[str, str] = {}
    for item in env_list(name, default):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise EnvError(f"{name} must be key=value pairs separated by commas, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def env_path(name: str, default: Path | str) -> Path:
    """Return the variable as an absolute path (relative paths are taken from the CWD)."""
    raw = os.environ.get(name, "")
    return Path(raw or default).expanduser().resolve()


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return the matching entry of ``choices`` (case-insensitive); anything else is an error."""
    raw = os.environ.get(name, default).strip() or default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise EnvError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
