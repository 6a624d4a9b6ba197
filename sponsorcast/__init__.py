"""sponsorcast: personalised email campaigns to event leads through Resend."""

__version__ = "0.1.0"
