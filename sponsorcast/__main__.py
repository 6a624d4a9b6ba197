"""``python -m sponsorcast``."""

from sponsorcast.cli import main

if __name__ == "__main__":
    main()
