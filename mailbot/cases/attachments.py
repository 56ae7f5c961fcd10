"""Attachments of a case's mail, kept as files and never opened.

In: a parsed message that became (or was added to) a case. Out: its attachments written to
``<[paths] attachments>/<case ref>/<ledger id>-<n>-<safe name>`` (mode 0600), each up to
``[limits] max_attachment_bytes`` (a larger one is listed, not written), and the list of what
was done, which the pipeline records as a case event. Nothing here looks inside an attachment.

The file name a sender chose is only a hint: it is cut to its last path component, reduced to
letters, digits, dot, dash and underscore, and prefixed with the ledger id and the part number,
so it can neither leave the case's folder ("../../etc/passwd", "C:\\x", "/abs") nor overwrite
another message's file; the final path is checked to be inside the folder, and symlinks are
not followed. A disk that cannot take a file (full, read-only) is a ``Quarantine`` with the
reason: the transaction rolls back, the message keeps its ledger row, and
``mailbot quarantine replay`` retries it once there is room.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from email.message import Message
from pathlib import Path
from typing import Any

from mailbot.config import Config
from mailbot.errors import Quarantine
from mailbot.inbound.parse import decode_text

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
NAME_CHARS = 80


def folder(cfg: Config, case_ref: str) -> Path:
    return cfg.path(cfg.paths.attachments) / _UNSAFE.sub("_", case_ref)


def safe_name(filename: str) -> str:
    """A file name that stays in its folder: last component, safe characters, no leading dot."""
    name = re.split(r"[\\/]", unicodedata.normalize("NFKC", filename))[-1]
    name = _UNSAFE.sub("_", name).lstrip("._-")
    if len(name) > NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:10] if dot else ""
        name = (stem if dot else name)[: NAME_CHARS - len(ext) - 1] + (f".{ext}" if ext else "")
    return name or "attachment"


def _parts(message: Message) -> list[Message]:
    return [
        part
        for part in message.walk()
        if not part.is_multipart()
        and (part.get_filename() or part.get_content_disposition() == "attachment")
    ]


def save(cfg: Config, case_ref: str, ledger_id: int, message: Message) -> list[dict[str, Any]]:
    """Write the message's attachments for the case; what was stored (or why not), per part."""
    parts = _parts(message)
    if not parts:
        return []
    limit = cfg.limits.max_attachment_bytes
    target = folder(cfg, case_ref)
    done: list[dict[str, Any]] = []
    for number, part in enumerate(parts, 1):
        shown = decode_text(part.get_filename() or "")[:200]
        try:
            payload = part.get_payload(decode=True) or b""
        except (ValueError, TypeError, AssertionError):
            payload = b""
        entry: dict[str, Any] = {
            "name": shown,
            "type": part.get_content_type(),
            "size": len(payload),
            "stored": None,
        }
        done.append(entry)
        if len(payload) > limit:
            entry["reason"] = f"over [limits] max_attachment_bytes = {limit}; kept in the message"
            continue
        path = target / f"{ledger_id}-{number}-{safe_name(shown)}"
        if path.resolve().parent != target.resolve():  # cannot happen with safe_name; checked
            raise Quarantine(f"attachment {number}: file name {shown!r} leaves {target}")
        _write(path, payload, number)
        entry["stored"] = str(path.relative_to(cfg.path(cfg.paths.attachments)))
    return done


def _write(path: Path, payload: bytes, number: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise Quarantine(
            f"attachment {number} cannot be stored in {path.parent}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None


def remove(cfg: Config, case_ref: str) -> int:
    """Delete a case's attachment files (retention); how many there were."""
    target = folder(cfg, case_ref)
    if not target.is_dir():
        return 0
    count = sum(1 for p in target.iterdir() if p.is_file())
    shutil.rmtree(target)
    return count
