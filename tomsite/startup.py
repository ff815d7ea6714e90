"""The system checks every long-running process runs before it serves or starts work.

Django runs its checks for ``manage.py`` commands only, never under daphne or Celery,
so a placeholder secret would otherwise go live. Web (``tomsite.asgi``), worker and beat
(``tomsite.celery``) call ``startup_checks_run`` and exit on any error. Only the security
checks run (TOM's secrets, keys and proxy settings, and Django's own deployment
checks): the model and backend checks (voice.E001-E003, E010-E014) stay with
``manage.py check --deploy``, because the worker and beat load no models and the web
process reports a missing one per call.
"""

from __future__ import annotations

import logging

from django.core.checks import CheckMessage, Tags, run_checks

logger = logging.getLogger(__name__)


class StartupRefused(SystemExit):
    """Raised to stop the process; its text names each failed check by id."""


def startup_checks_run(*, component: str) -> list[CheckMessage]:
    """Run the checks for ``component`` ("web", "worker", "beat"); return the warnings.

    Raises ``StartupRefused`` (a ``SystemExit`` with status 1 and a readable message)
    when any check reports an error that ``SILENCED_SYSTEM_CHECKS`` does not silence.
    """
    messages = [m for m in run_checks(tags=[Tags.security], include_deployment_checks=True)
                if not m.is_silenced()]
    errors = [m for m in messages if m.is_serious()]
    warnings = [m for m in messages if not m.is_serious()]
    if warnings:  # one line: Django's HTTPS warnings repeat on every start of a laptop TOM
        logger.warning("startup.check_warnings", extra={"component": component,
                                                        "checks": [m.id for m in warnings]})
    if errors:
        logger.critical("startup.refused", extra={"component": component,
                                                  "checks": [m.id for m in errors]})
        lines = [f"TOM {component} refuses to start: {len(errors)} system check error(s)."]
        lines += [f"  {m.id}: {m.msg}" + (f"\n      HINT: {m.hint}" if m.hint else "")
                  for m in errors]
        lines.append("Fix the setting(s) (see env.sample), then start again; "
                     "`python manage.py check --deploy` shows the same list.")
        # SystemExit's message goes to stderr and the exit status is 1, with no traceback.
        raise StartupRefused("\n".join(lines))
    return warnings
