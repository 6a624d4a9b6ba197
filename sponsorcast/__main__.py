"""``python -m sponsorcast``."""

from sponsorcast.cli import main

main()
