"""Extraction throughput beside the bare spaCy NER pipeline on the same texts.

Run: .venv/bin/python bench/extract_bench.py [N]   (default 1,000 generated request emails)
Prints emails/s and words/s for `extract_many` (the whole of `mailbot extract` after parsing)
and for the bare model (tok2vec + ner, nlp.pipe) on the same prepared texts, and the ratio.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from mailbot.inbound.extraction import extract_many, nlp, text  # noqa: E402
from mailbot.inbound.parse import parse  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rules = ROOT / "rules"
    msgs = [parse(raw) for _, raw in generate(n, seed=7)]
    texts = [f"{m.subject}\n\n{text.prepare(m.text).full}" for m in msgs]
    words = sum(len(t.split()) for t in texts)
    import importlib

    bare = importlib.import_module(nlp.MODEL_PACKAGE).load(exclude=nlp.UNUSED)
    nlp.load(rules)
    extract_many(msgs[:20], rules)  # warm up both
    list(bare.pipe(texts[:20]))

    started = time.perf_counter()
    list(bare.pipe(texts, batch_size=64))
    bare_s = time.perf_counter() - started
    started = time.perf_counter()
    extract_many(msgs, rules)
    ours_s = time.perf_counter() - started

    print(f"{n} emails, {words} words")
    print(f"{'':28} {'emails/s':>9} {'words/s':>9} {'seconds':>8}")
    print(f"{'bare spaCy (tok2vec+ner)':28} {n / bare_s:9.0f} {words / bare_s:9.0f} {bare_s:8.2f}")
    print(f"{'mailbot extract':28} {n / ours_s:9.0f} {words / ours_s:9.0f} {ours_s:8.2f}")
    print(f"cost of extraction over the bare pipeline: {ours_s / bare_s:.2f}x")


if __name__ == "__main__":
    main()
