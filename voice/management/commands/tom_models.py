"""Assemble the models shipped in PyPI packages under TOM_DATA_DIR/models; never downloads."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice import models, native_check


class Command(BaseCommand):
    help = ("Join and verify the model files that ship split across packages (offline); "
            "with --verify, prove the compiled libraries run on this CPU.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*",
                            help=f"models to assemble: {', '.join(models.SPECS)} "
                                 "(default: all but the optional ones)")
        parser.add_argument("--force", action="store_true", help="assemble even if present")
        parser.add_argument("--verify", action="store_true",
                            help="then run Piper, both VADs, Whisper and llama.cpp (a prompt "
                                 f"of {native_check.MIN_PROMPT_TOKENS}+ tokens) once, in a "
                                 "child process; fail, saying why, if one crashes")

    def handle(self, *args: Any, **options: Any) -> None:
        unknown = sorted(set(options["names"]) - set(models.SPECS))
        if unknown:
            raise CommandError(f"unknown model(s): {', '.join(unknown)}")
        for name in options["names"] or models.required():
            try:
                path = models.assemble(name, force=options["force"])
            except models.ModelError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"{name}: {path} (verified)")
        if options["verify"]:
            self._verify()

    def _verify(self) -> None:
        self.stdout.write("running each compiled library once on this CPU (a few seconds) ...")
        self.stdout.flush()
        report = native_check.native_checks_run()
        for step in report.steps:
            shown = ", ".join(f"{k} {v}" for k, v in step.values.items() if k != "completion")
            self.stdout.write(f"  {step.name:<4} {step.state:<8} {shown or step.detail}")
        if not report.ok:
            raise CommandError(
                "a compiled library does not run on this CPU:\n  "
                + "\n  ".join(report.failures())
                + (f"\nthe check's last output:\n{report.output_tail}"
                   if report.output_tail.strip() else ""))
        self.stdout.write(f"compiled libraries verified in {report.seconds:.1f} s")
