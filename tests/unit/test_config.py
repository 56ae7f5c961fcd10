"""Config loading and validation: every error names the file and the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot import config
from mailbot.errors import ConfigError
from tests.conftest import ROOT


def load_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path)


def test_example_config_loads_and_matches_defaults():
    cfg = config.load(ROOT / "config.example.toml")
    defaults = config.Config()
    for section in ("mailbot", "database", "mailbox", "imap", "outgoing", "smtp", "limits"):
        assert getattr(cfg, section) == getattr(defaults, section), section


def test_example_config_documents_every_option():
    text = (ROOT / "config.example.toml").read_text()
    for section, cls in config.Config.__annotations__.items():
        if section in ("source", "base_dir"):
            continue
        assert f"[{section}]" in text, section
        for name in getattr(config, cls).__dataclass_fields__:
            assert f"\n{name} = " in text, f"[{section}] {name} missing from the example"


@pytest.mark.parametrize(("cores", "workers"), [({0}, 1), ({0, 1}, 2), (set(range(8)), 2)])
def test_extraction_workers_default_to_the_cores_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: set[int], workers: int
):
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda pid: cores)
    assert load_text(tmp_path, "[extraction]\nbatch_size = 8\n").extraction.workers == workers
    assert load_text(tmp_path, "[extraction]\nworkers = 1\n").extraction.workers == 1


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load(None)
    assert cfg.source == "embedded defaults"
    assert cfg.database_url == f"sqlite:///{tmp_path}/var/mailbot.db"
    assert cfg.mailbox.kind == "maildir"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[imap]\npassword = 'hunter2'\n", "[imap] password: passwords may not be written"),
        ("[smtp]\nport = 'x'\n", "[smtp] port: expected int"),
        ("[smtp]\nport = 70000\n", "[smtp] port: 70000 is not a TCP port"),
        ("[metrics]\nport = 0\n", "[metrics] port: 0 is not a TCP port"),
        ("[nope]\na = 1\n", "[nope]: unknown section"),
        ("[imap]\nhots = 'x'\n", "[imap] hots: unknown option"),
        ("[mailbox]\nkind = 'pop3'\n", "[mailbox] kind: must be 'maildir' or 'imap'"),
        ("[mailbox]\nkind = 'imap'\n", "[imap] host: is required"),
        ("[mailbot]\ntimezone = 'Mars/Base'\n", "[mailbot] timezone: unknown time zone"),
        ("[coordinators]\naddresses = ['nobody']\n", "[coordinators] addresses"),
        ("[paths]\nrules = 'missing'\n", "[paths] rules: folder"),
        ("[imap\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_option(tmp_path: Path, text: str, expected: str):
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    message = str(err.value)
    assert expected in message
    assert str(tmp_path / "c.toml") in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_missing_file_is_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "absent.toml")


def test_secret_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = load_text(tmp_path, "[imap]\npassword_file = 'pw'\n")
    assert (
        config.read_secret(cfg, "imap", cfg.imap.password_env, cfg.imap.password_file) == "s3cret"
    )
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD", "fromenv")
    cfg = load_text(tmp_path, "")
    assert config.read_secret(cfg, "smtp", cfg.smtp.password_env, "") == "fromenv"


def test_relative_paths_resolve_against_config_folder(tmp_path: Path):
    cfg = load_text(tmp_path, "[database]\nurl = 'sqlite:///db/x.db'\n")
    assert cfg.database_url == f"sqlite:///{tmp_path}/db/x.db"
