"""Extraction on the labelled request corpus (tests/corpus/requests), through the CLI.

These guard against regressions: the figures reported in the README are printed by
`mailbot eval tests/corpus/requests/<set>`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mailbot import evaluation
from mailbot.cli import main
from mailbot.inbound.extraction import agency, extract_many, nlp
from mailbot.inbound.parse import parse
from tests.conftest import ROOT

CORPUS = ROOT / "tests" / "corpus" / "requests"
RULES = ROOT / "rules"
TARGETS = {
    "agency": 0.9,
    "city": 0.9,
    "state": 0.9,
    "incident_type": 0.9,
    "incident_date": 0.9,
    "killed": 0.85,
    "injured": 0.85,
    "contact_name": 0.95,
    "contact_phone": 0.95,
}


def scored(folder: Path) -> evaluation.Score:
    gold = evaluation.load_gold(folder)
    msgs = [parse((folder / name).read_bytes()) for name in sorted(gold)]
    results = extract_many(msgs, RULES)
    return evaluation.score(
        {name: ex.to_json() for name, ex in zip(sorted(gold), results, strict=True)}, gold
    )


@pytest.mark.parametrize("name", ["dev", "heldout", "unseen"])
def test_targets_hold(name: str):
    score = scored(CORPUS / name)
    for field, target in TARGETS.items():
        assert score.accuracy(field) >= target, (field, score.accuracy(field))
    assert score.services_prf[2] >= 0.85


def test_extract_cli_json(capsys):
    files = sorted((CORPUS / "dev").glob("00[12]-*.eml"))
    assert main(["extract", "--json", *map(str, files)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(f) for f in files]
    gold = json.loads((CORPUS / "dev" / "gold.json").read_text())
    for row, path in zip(rows, files, strict=True):
        assert row["agency"] == gold[path.name]["agency"]
        assert {"needs_review", "confidence", "priority_reason"} <= row.keys()


def test_eval_cli_reports_fields_and_misses(capsys, tmp_path):
    assert main(["eval", str(CORPUS / "dev")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("34 files")
    assert "services" in out and "F1" in out
    bad = tmp_path / "set"
    bad.mkdir()
    (bad / "gold.json").write_text('{"missing.eml": {}}')
    assert main(["eval", str(bad)]) == 1
    assert "names files that are not in" in capsys.readouterr().err


def test_rules_only_when_the_model_is_missing(monkeypatch, caplog):
    import importlib

    real = importlib.import_module

    def no_model(name, package=None):
        if name == nlp.MODEL_PACKAGE:
            raise ImportError("No module named " + name)
        return real(name, package)

    nlp.load.cache_clear()
    monkeypatch.setattr(importlib, "import_module", no_model)
    try:
        with caplog.at_level(logging.WARNING):
            pipeline = nlp.load(RULES)
            nlp.load(RULES)
        assert pipeline.pipe_names == ["entity_ruler"]
        doc = pipeline("The Harlan PD asked for help.")
        assert [e.label_ for e in doc.ents] == ["AGENCY"]
        rules = agency.load_rules(RULES)
        assert agency.normalise(rules, doc.ents[0].text) == "Harlan Police Department"
        warnings = [r for r in caplog.records if "rules only" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        nlp.load.cache_clear()
