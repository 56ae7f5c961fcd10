"""Render Jinja2 templates from templates/ into the text and HTML bodies of a mail.

Templates are named for who gets the mail and why (``ack/request_received``); each has a
``.txt.j2`` and an ``.html.j2``. HTML is autoescaped, and an undefined variable is an error
(StrictUndefined) rather than a blank in a mail to a grieving agency.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape


@lru_cache(maxsize=4)
def environment(templates_dir: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(templates_dir: Path, name: str, context: dict[str, Any]) -> tuple[str, str]:
    """The (text, html) bodies of template ``name`` (without the .txt.j2/.html.j2 ending)."""
    env = environment(templates_dir)
    text = env.get_template(f"{name}.txt.j2").render(context)
    html = env.get_template(f"{name}.html.j2").render(context)
    return text, html
