"""crisis.detect: the sentence with a sign of personal crisis, the perpetrator's suicide not."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cases import crisis

RULES = crisis.load_rules(Path(__file__).resolve().parents[2] / "rules")


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (
            "Thank you.\n\nHonestly I can't go on like this. We need help.",
            "Honestly I can't go on like this.",
        ),
        (
            "One of my sergeants said he is\n   thinking about   suicide.",
            "One of my sergeants said he is thinking about suicide.",
        ),
        (
            "The shooter took his own life. My deputy says he wants to end it all.",
            "My deputy says he wants to end it all.",
        ),
        ("I'M NOT OKAY.", "I'M NOT OKAY."),
    ],
)
def test_the_first_sentence_with_a_sign_is_returned_flat(text: str, sentence: str) -> None:
    assert crisis.detect(RULES, text) == sentence


@pytest.mark.parametrize(
    "text",
    [
        "The gunman shot himself as officers arrived. Four people died.",
        "A suicide vest was found in the car.",
        "We need a peer advisor for the debriefing on Monday.",
        # the words of a sign, but in two sentences: neither sentence shows one
        "I can't.\n\nGo on with the list: staffing, media, families.",
        "",
    ],
)
def test_no_sign_no_sentence(text: str) -> None:
    assert crisis.detect(RULES, text) is None


def test_a_long_sentence_is_cut_at_300_characters() -> None:
    text = "We are all exhausted and " + "really " * 60 + "I don't want to live like this."
    found = crisis.detect(RULES, text)
    assert found is not None and len(found) == 300 and found.startswith("We are all exhausted")
