"""The twelve greenlight checks. Importing this package registers them."""

from greenlights.checks import calls, system  # noqa: F401
from greenlights.checks.base import REGISTRY, Check, Outcome, RunContext

__all__ = ["REGISTRY", "Check", "Outcome", "RunContext"]
