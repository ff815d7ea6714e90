"""``python -m tomsite.serve``: daphne, with an access log that drops query strings.

Query strings may carry a fork token (``/ws/fork/?token=``) or a phone number a
supervisor typed into the admin search; daphne's own access log writes them out.
Arguments are daphne's own.
"""

from __future__ import annotations

from typing import Any

from daphne import cli
from daphne.access import AccessLogGenerator


class QuerylessAccessLog(AccessLogGenerator):
    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = str(details.get("path", ""))
        super().__call__(protocol, action, {**details, "path": path.split("?", 1)[0]})


def main() -> None:
    # daphne.cli builds its access log from this module-level name; no other hook exists.
    cli.AccessLogGenerator = QuerylessAccessLog
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
