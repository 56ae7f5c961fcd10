"""The typed exception tree of mailbot.

Every error a user can cause or fix (bad config, unreachable server, missing file) is a
``MailbotError`` whose ``str()`` is one line naming what and where; the CLI prints it and exits
non-zero without a traceback. Pipeline steps stop a message by raising ``Discard`` (handled,
nothing more to do) or ``Quarantine`` (kept with its reason for a later replay).
"""


class MailbotError(Exception):
    """Base of every error mailbot reports to a user."""


class ConfigError(MailbotError):
    """The configuration file or an option in it is wrong."""


class RulesError(MailbotError):
    """A file in rules/ is malformed; the message names the file and line."""


class DatabaseError(MailbotError):
    """The database cannot be reached or is not at the expected schema."""


class MailboxError(MailbotError):
    """The mailbox (IMAP server or Maildir) cannot be reached or used."""


class MailboxRefused(MailboxError):
    """The IMAP server refused the login, or there are no credentials to give it: retried more
    slowly than a network failure, so that the retries do not lock the account."""


class TokenError(MailbotError):
    """No OAuth2 access token could be had; the message names [oauth2] and the provider's
    error, never a token or a secret."""


class TransportError(MailbotError):
    """Outgoing mail could not be handed over."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class NotFound(MailbotError):
    """A case, ledger row or file named on the command line does not exist."""


class PipelineStop(Exception):
    """Base of the exceptions a pipeline step raises to end processing of a message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Discard(PipelineStop):
    """The message was handled and needs nothing more (auto-reply, bounce, duplicate, ...)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class Quarantine(PipelineStop):
    """The message cannot be handled now; keep it with the reason for `quarantine replay`."""
