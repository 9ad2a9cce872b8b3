"""The ``containertracker`` command line (needs the ``cli`` extra: typer, rich)."""

from containertracker.cli.app import EXIT_CODES, app, main

__all__ = ["EXIT_CODES", "app", "main"]
