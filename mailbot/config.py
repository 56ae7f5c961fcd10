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
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECURITY_MODES = ("ssl", "starttls", "none")
AUTH_MODES = ("password", "oauth2")
OAUTH2_PROVIDERS = ("microsoft", "google", "generic")
# OAuth2 secrets, refused in the config: <key>_env or <key>_file say where they are.
_SECRET_OPTIONS = ("client_secret", "refresh_token")


@dataclass(frozen=True)
class MailbotSection:
    organisation: str = "Mass Violence Advisory Initiative"
    address: str = "mvai@mvai.example.org"
    display_name: str = "MVAI Intake"
    timezone: str = "America/New_York"
    log_level: str = "INFO"
    log_format: str = "text"
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
    auth: str = "password"
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
    auth: str = "password"
    password_env: str = "MAILBOT_SMTP_PASSWORD"
    password_file: str = ""
    ca_file: str = ""
    timeout_seconds: int = 30


@dataclass(frozen=True)
class OAuth2Section:
    provider: str = ""
    client_id: str = ""
    client_secret_env: str = "MAILBOT_OAUTH2_CLIENT_SECRET"
    client_secret_file: str = ""
    refresh_token_env: str = "MAILBOT_OAUTH2_REFRESH_TOKEN"
    refresh_token_file: str = ""
    tenant: str = ""
    authority: str = ""
    token_url: str = ""
    scopes: tuple[str, ...] = ()
    ca_file: str = ""
    refresh_margin_seconds: int = 300
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
    max_attachment_bytes: int = 10 * 1024 * 1024
    auto_replies_per_sender_per_day: int = 3


def default_workers() -> int:
    """Extraction workers when the config does not say: two where this process may run on
    two cores or more (they share one loaded model, so the second costs about 45 MB, for
    about 17% more throughput: BENCHMARKS.md), else one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


@dataclass(frozen=True)
class ExtractionSection:
    workers: int = field(default_factory=default_workers)
    batch_size: int = 16
    timeout_seconds: float = 60.0
    max_memory_mb: int = 1536


@dataclass(frozen=True)
class MetricsSection:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class PathsSection:
    rules: str = ""
    templates: str = ""
    attachments: str = "var/attachments"


@dataclass(frozen=True)
class Config:
    mailbot: MailbotSection = field(default_factory=MailbotSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    mailbox: MailboxSection = field(default_factory=MailboxSection)
    imap: ImapSection = field(default_factory=ImapSection)
    outgoing: OutgoingSection = field(default_factory=OutgoingSection)
    smtp: SmtpSection = field(default_factory=SmtpSection)
    oauth2: OAuth2Section = field(default_factory=OAuth2Section)
    coordinators: CoordinatorsSection = field(default_factory=CoordinatorsSection)
    roster: RosterSection = field(default_factory=RosterSection)
    security: SecuritySection = field(default_factory=SecuritySection)
    digest: DigestSection = field(default_factory=DigestSection)
    retention: RetentionSection = field(default_factory=RetentionSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    extraction: ExtractionSection = field(default_factory=ExtractionSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
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
        if key in _SECRET_OPTIONS:
            raise ConfigError(
                f"{where}: secrets may not be written in the config; use {key}_env "
                f"(an environment variable) or {key}_file"
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
    if cfg.mailbot.log_format not in ("text", "json"):
        fail("[mailbot] log_format", f"must be 'text' or 'json', not {cfg.mailbot.log_format!r}")
    if not 0 < cfg.metrics.port < 65536:
        fail("[metrics] port", f"{cfg.metrics.port} is not a TCP port")
    if not cfg.metrics.host:
        fail("[metrics] host", "give an address to listen on, like 127.0.0.1")
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
    _validate_oauth2(cfg, fail)
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
    if cfg.limits.max_attachment_bytes < 0:
        fail("[limits] max_attachment_bytes", "must be 0 (keep none on disk) or more")
    if cfg.limits.max_message_bytes < 1024:
        fail("[limits] max_message_bytes", "must be at least 1024")
    if not 0 <= cfg.extraction.workers <= 16:
        fail("[extraction] workers", "must be between 0 (in the daemon's process) and 16")
    if not 1 <= cfg.extraction.batch_size <= 256:
        fail("[extraction] batch_size", "must be between 1 and 256")
    if cfg.extraction.timeout_seconds < 1:
        fail("[extraction] timeout_seconds", "must be at least 1")
    if cfg.extraction.max_memory_mb and cfg.extraction.max_memory_mb < 512:
        fail("[extraction] max_memory_mb", "must be 0 (no limit) or at least 512")
    for opt, path in (("[paths] rules", cfg.rules_dir), ("[paths] templates", cfg.templates_dir)):
        if not path.is_dir():
            fail(opt, f"folder {path} does not exist")


def _validate_oauth2(cfg: Config, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    """[imap]/[smtp] auth, and [oauth2] when either uses it (see mailbot/oauth.py)."""
    used = []
    for section, sec, active in (
        ("imap", cfg.imap, cfg.mailbox.kind == "imap"),
        ("smtp", cfg.smtp, cfg.outgoing.transport == "smtp"),
    ):
        if sec.auth not in AUTH_MODES:
            fail(f"[{section}] auth", f"must be 'password' or 'oauth2', not {sec.auth!r}")
        if active and sec.auth == "oauth2":
            if not sec.username:
                fail(f"[{section}] username", "is required with auth = 'oauth2' (the mailbox)")
            used.append(section)
    o = cfg.oauth2
    if o.provider and o.provider not in OAUTH2_PROVIDERS:
        fail("[oauth2] provider", f"must be one of {', '.join(OAUTH2_PROVIDERS)}")
    if not used:
        return
    if not o.provider:
        fail("[oauth2] provider", f"is required when [{used[0]}] auth = 'oauth2'")
    if not o.client_id:
        fail("[oauth2] client_id", "is required (the application's client ID)")
    needed = {"microsoft": "authority", "google": "token_url", "generic": "token_url"}[o.provider]
    for option in ("authority", "token_url"):
        url = getattr(o, option)
        if url and option != needed:
            fail(f"[oauth2] {option}", f"is not used by provider {o.provider!r}")
        parts = urllib.parse.urlsplit(url)
        if url and (parts.scheme != "https" or not parts.hostname):
            fail(f"[oauth2] {option}", f"{url!r} is not an https:// URL")
    if o.provider == "microsoft" and not (o.tenant or o.authority):
        fail("[oauth2] tenant", "is required for provider 'microsoft' (the tenant ID or domain)")
    if o.provider == "generic" and not o.token_url:
        fail("[oauth2] token_url", "is required for provider 'generic'")
    if o.provider != "microsoft" and not (o.refresh_token_env or o.refresh_token_file):
        fail("[oauth2] refresh_token_env", f"provider {o.provider!r} needs a refresh token")
    if not (o.client_secret_env or o.client_secret_file):
        fail("[oauth2] client_secret_env", "name the variable (or client_secret_file)")
    if o.ca_file and not cfg.path(o.ca_file).is_file():
        fail("[oauth2] ca_file", f"{cfg.path(o.ca_file)} does not exist")
    if o.refresh_margin_seconds < 0:
        fail("[oauth2] refresh_margin_seconds", "must be 0 or more")
    if o.timeout_seconds < 1:
        fail("[oauth2] timeout_seconds", "must be at least 1")


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


def read_secret(
    cfg: Config, section: str, env_name: str, file_name: str, option: str = "password_file"
) -> str | None:
    """The password for ``section`` from its password_file, else its environment variable.
    The value is registered with the log redaction, so no log line ever shows it."""
    from mailbot.logs import register_secret

    if file_name:
        secret_path = cfg.path(file_name)
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
            register_secret(secret)
            return secret
        except OSError as exc:
            raise ConfigError(
                f"{cfg.source}: [{section}] {option}: cannot read {secret_path}: {exc.strerror}"
            ) from None
    if env_name:
        register_secret(os.environ.get(env_name))
        return os.environ.get(env_name)
    return None
