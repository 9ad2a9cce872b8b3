"""The ``containertracker`` command line (typer, rich): :mod:`containertracker.cli.app`.

:func:`main` imports the app when called, so that a broken installation (typer missing, say)
gets one line saying what to install instead of a traceback.
"""

from containertracker.cli.missing import exit_if_missing

__all__ = ["main"]


def main() -> None:
    """Console-script entry point (``containertracker``, ``python -m containertracker``): run
    the command line (:func:`containertracker.cli.app.main`)."""
    try:
        from containertracker.cli.app import main as run
    except ImportError as exc:
        exit_if_missing(exc)
        raise
    run()
