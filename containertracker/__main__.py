"""``python -m containertracker``: the command line."""

from containertracker.cli import main

main()
