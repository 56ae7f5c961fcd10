"""mailbot: email intake and case tracking for the Mass Violence Advisory Initiative."""

__version__ = "0.1.0"
