"""Configuration: one TOML file, validated at start-up.

In: a path (``--config``), else ./config.toml when present, else the embedded defaults.
Out: a frozen ``Config``. Every option and its default is in config.example.toml; an unknown
option, a wrong type or a bad value raises ``ConfigError`` naming the file and the option.
Secrets never live in the file: passwords come from an environment variable or a file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECURITY_MODES = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class MailbotSection:
    organisation: str = "Mass Violence Advisory Initiative"
    address: str = "mvai@mvai.example.org"
    display_name: str = "MVAI Intake"
    timezone: str = "America/New_York"
    log_level: str = "INFO"
    sample_requests: bool = True


@dataclass(frozen=True)
class DatabaseSection:
    url: str = "sqlite:///var/mailbot.db"
    auto_upgrade: bool = True


@dataclass(frozen=True)
class MailboxSection:
    kind: str = "maildir"
    maildir: str = "var/mail"
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class ImapSection:
    host: str = ""
    port: int = 993
    security: str = "ssl"
    username: str = ""
    password_env: str = "MAILBOT_IMAP_PASSWORD"
    password_file: str = ""
    ca_file: str = ""
    folder: str = "INBOX"
    after: str = "move"
    processed_folder: str = "MVAI/Processed"
    idle: bool = True
    idle_renew_seconds: int = 540
    poll_seconds: int = 60
    timeout_seconds: int = 30
    fetch_batch: int = 50


@dataclass(frozen=True)
class OutgoingSection:
    transport: str = "file"
    directory: str = "var/mail/outgoing"
    max_attempts: int = 8
    retry_base_seconds: int = 30
    retry_max_seconds: int = 3600


@dataclass(frozen=True)
class SmtpSection:
    host: str = ""
    port: int = 465
    security: str = "ssl"
    username: str = ""
    password_env: str = "MAILBOT_SMTP_PASSWORD"
    password_file: str = ""
    ca_file: str = ""
    timeout_seconds: int = 30


@dataclass(frozen=True)
class CoordinatorsSection:
    name: str = "MVAI Duty Coordinator"
    phone: str = "+1 202 555 0100"
    addresses: tuple[str, ...] = ("coordinator@mvai.example.org",)


@dataclass(frozen=True)
class RosterSection:
    path: str = ""


@dataclass(frozen=True)
class SecuritySection:
    require_authenticated_sender: bool = False
    trusted_authserv_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DigestSection:
    enabled: bool = True
    time: str = "07:00"


@dataclass(frozen=True)
class RetentionSection:
    closed_case_days: int = 365


@dataclass(frozen=True)
class LimitsSection:
    max_message_bytes: int = 25 * 1024 * 1024
    auto_replies_per_sender_per_day: int = 3


@dataclass(frozen=True)
class PathsSection:
    rules: str = ""
    templates: str = ""


@dataclass(frozen=True)
class Config:
    mailbot: MailbotSection = field(default_factory=MailbotSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    mailbox: MailboxSection = field(default_factory=MailboxSection)
    imap: ImapSection = field(default_factory=ImapSection)
    outgoing: OutgoingSection = field(default_factory=OutgoingSection)
    smtp: SmtpSection = field(default_factory=SmtpSection)
    coordinators: CoordinatorsSection = field(default_factory=CoordinatorsSection)
    roster: RosterSection = field(default_factory=RosterSection)
    security: SecuritySection = field(default_factory=SecuritySection)
    digest: DigestSection = field(default_factory=DigestSection)
    retention: RetentionSection = field(default_factory=RetentionSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    paths: PathsSection = field(default_factory=PathsSection)
    source: str = "embedded defaults"
    base_dir: Path = field(default_factory=Path.cwd)

    def path(self, value: str) -> Path:
        """A path option resolved against the config file's folder (or the cwd)."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def rules_dir(self) -> Path:
        return self.path(self.paths.rules) if self.paths.rules else PROJECT_DIR / "rules"

    @property
    def templates_dir(self) -> Path:
        if self.paths.templates:
            return self.path(self.paths.templates)
        return PROJECT_DIR / "templates"

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.path(url[len(prefix) :]))
        return url

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.mailbot.timezone)

    def tls_context(self, ca_file: str) -> ssl.SSLContext:
        """Certificate-checking TLS; ``ca_file`` (PEM) replaces the system CAs when set."""
        return ssl.create_default_context(cafile=str(self.path(ca_file)) if ca_file else None)


_SECTIONS = {
    f.name: f.type for f in dataclasses.fields(Config) if f.name not in ("source", "base_dir")
}


def _section_class(name: str) -> type:
    return typing.get_type_hints(Config)[name]


def _coerce(where: str, expected: typing.Any, value: typing.Any) -> typing.Any:
    origin = typing.get_origin(expected)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if origin is types.UnionType:
        expected = typing.get_args(expected)[0]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def _build_section(source: str, name: str, raw: dict[str, typing.Any]) -> typing.Any:
    cls = _section_class(name)
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        where = f"{source}: [{name}] {key}"
        if key == "password" or key.endswith("_password") or key == "secret":
            raise ConfigError(
                f"{where}: passwords may not be written in the config; "
                "use password_env (an environment variable) or password_file"
            )
        if key not in hints:
            raise ConfigError(f"{where}: unknown option (see config.example.toml)")
        values[key] = _coerce(where, hints[key], value)
    return cls(**values)


def _validate(cfg: Config) -> None:
    src = cfg.source

    def fail(option: str, problem: str) -> typing.NoReturn:
        raise ConfigError(f"{src}: {option}: {problem}")

    if cfg.mailbox.kind not in ("maildir", "imap"):
        fail("[mailbox] kind", f"must be 'maildir' or 'imap', not {cfg.mailbox.kind!r}")
    if cfg.outgoing.transport not in ("file", "smtp"):
        fail("[outgoing] transport", f"must be 'file' or 'smtp', not {cfg.outgoing.transport!r}")
    if "@" not in cfg.mailbot.address:
        fail("[mailbot] address", f"{cfg.mailbot.address!r} is not an email address")
    for addr in cfg.coordinators.addresses:
        if "@" not in addr:
            fail("[coordinators] addresses", f"{addr!r} is not an email address")
    try:
        ZoneInfo(cfg.mailbot.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail("[mailbot] timezone", f"unknown time zone {cfg.mailbot.timezone!r}")
    if cfg.mailbot.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail("[mailbot] log_level", "must be DEBUG, INFO, WARNING or ERROR")
    for section, sec in (("imap", cfg.imap), ("smtp", cfg.smtp)):
        if sec.security not in SECURITY_MODES:
            fail(f"[{section}] security", f"must be one of {', '.join(SECURITY_MODES)}")
        if not 0 < sec.port < 65536:
            fail(f"[{section}] port", f"{sec.port} is not a TCP port")
    for section, ca_file in (("imap", cfg.imap.ca_file), ("smtp", cfg.smtp.ca_file)):
        if ca_file and not cfg.path(ca_file).is_file():
            fail(f"[{section}] ca_file", f"{cfg.path(ca_file)} does not exist")
    if cfg.mailbox.kind == "imap" and not cfg.imap.host:
        fail("[imap] host", "is required when [mailbox] kind = 'imap'")
    if cfg.outgoing.transport == "smtp" and not cfg.smtp.host:
        fail("[smtp] host", "is required when [outgoing] transport = 'smtp'")
    if cfg.imap.after not in ("move", "flag"):
        fail("[imap] after", "must be 'move' or 'flag'")
    if not 60 <= cfg.imap.idle_renew_seconds <= 600:
        fail("[imap] idle_renew_seconds", "must be between 60 and 600 (RFC 2177: under 29 min)")
    if cfg.security.require_authenticated_sender and not cfg.security.trusted_authserv_ids:
        fail(
            "[security] trusted_authserv_ids",
            "name the authserv-id of your mail server when require_authenticated_sender = true",
        )
    if cfg.roster.path and not cfg.path(cfg.roster.path).is_file():
        fail("[roster] path", f"{cfg.path(cfg.roster.path)} does not exist")
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", cfg.digest.time):
        fail("[digest] time", f"{cfg.digest.time!r} is not a time of day like 07:00")
    if cfg.outgoing.max_attempts < 1:
        fail("[outgoing] max_attempts", "must be at least 1")
    if cfg.limits.max_message_bytes < 1024:
        fail("[limits] max_message_bytes", "must be at least 1024")
    for opt, path in (("[paths] rules", cfg.rules_dir), ("[paths] templates", cfg.templates_dir)):
        if not path.is_dir():
            fail(opt, f"folder {path} does not exist")


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the config; ``None`` means ./config.toml if present, else defaults."""
    if path is None:
        default = Path("config.toml")
        if not default.exists():
            cfg = Config()
            _validate(cfg)
            return cfg
        path = default
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    source = str(p)
    sections: dict[str, typing.Any] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{source}: [{name}]: unknown section (see config.example.toml)")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: expected a [{name}] table")
        sections[name] = _build_section(source, name, value)
    cfg = Config(**sections, source=source, base_dir=p.resolve().parent)
    _validate(cfg)
    return cfg


def read_secret(cfg: Config, section: str, env_name: str, file_name: str) -> str | None:
    """The password for ``section`` from its password_file, else its environment variable."""
    if file_name:
        secret_path = cfg.path(file_name)
        try:
            return secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{cfg.source}: [{section}] password_file: cannot read {secret_path}: "
                f"{exc.strerror}"
            ) from None
    if env_name:
        return os.environ.get(env_name)
    return None
