"""Create (or reset) a supervisor account for the admin and print its password."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from calls.services import supervisor_ensure


class Command(BaseCommand):
    help = "Create or reset a staff user in the Supervisors group; prints the new password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=settings.TOM_DEMO_USERNAME)

    def handle(self, *args: Any, **options: Any) -> None:
        user, password = supervisor_ensure(username=options["username"])
        self.stdout.write(f"supervisor login: {user.get_username()}  password: {password}")
