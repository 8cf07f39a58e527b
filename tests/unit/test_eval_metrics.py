"""Evaluation metrics against values computed by hand."""

from __future__ import annotations

import pytest

from bot.datasets.examples import Example, example_of, prompt_key
from bot.evaluation import metrics as m
from bot.evaluation.judge import read_verdict


def test_normalization_ignores_case_punctuation_and_spacing() -> None:
    assert m.normalize("  Hello,   World!! ") == "hello world"
    assert m.normalize("«Café» — naïve…") == "café naïve"
    assert m.exact_match("Paris", " Paris\n") and not m.exact_match("Paris.", "Paris")
    assert m.normalized_match("Paris.", "paris") and not m.normalized_match("Paris", "Lyon")


def test_token_f1_by_hand() -> None:
    # common 2 of 2 guessed and 3 expected: P = 1, R = 2/3, F1 = 2·(2/3)/(5/3) = 0.8
    assert m.token_f1("the cat sat", "The cat.") == pytest.approx(0.8)
    # common 1: P = 1/2, R = 1/4, F1 = (1/4)/(3/4) = 1/3
    assert m.token_f1("a b c d", "a x") == pytest.approx(1 / 3)
    assert m.token_f1("same words", "Same, words!") == 1.0
    assert m.token_f1("something", "") == 0.0 and m.token_f1("", "") == 1.0
    # repeated words count as often as both sides have them: common 1 ("the"), P = 1/2, R = 1/1
    assert m.token_f1("the", "the the") == pytest.approx(2 / 3)


def test_which_tasks_are_classifications() -> None:
    assert m.looks_like_classification(["yes", "no", "Yes.", "no"])
    assert not m.looks_like_classification(["a", "b", "c"]), "labels must recur"
    assert not m.looks_like_classification(["yes"] * 5), "one class is not a classification"
    assert not m.looks_like_classification(["Paris, as if everyone didn't know.", "yes", "yes"])


def test_per_class_scores_micro_and_macro_by_hand() -> None:
    expected = ["cat", "cat", "cat", "dog", "dog", "bird"]
    predicted = ["cat", "Cat.", "dog", "dog", "cat", "I don't know"]
    table = m.classification(expected, predicted)
    assert table.labels == ["bird", "cat", "dog", "(other)"]
    assert table.confusion == [[0, 0, 0, 1], [0, 2, 1, 0], [0, 1, 1, 0]]
    scores = {c.label: c for c in table.classes}
    assert (scores["bird"].precision, scores["bird"].recall, scores["bird"].f1) == (0.0, 0.0, 0.0)
    assert scores["cat"].precision == pytest.approx(2 / 3) and scores["cat"].recall == pytest.approx(2 / 3)
    assert scores["dog"].f1 == pytest.approx(0.5) and scores["dog"].support == 2
    assert table.macro_precision == pytest.approx(7 / 18) and table.macro_f1 == pytest.approx(7 / 18)
    # TP 3, FP 2 (one "cat" and one "dog" said wrongly), FN 3 (bird, one cat, one dog)
    assert table.micro_precision == pytest.approx(3 / 5) and table.micro_recall == pytest.approx(1 / 2)
    assert table.micro_f1 == pytest.approx(2 * 0.6 * 0.5 / 1.1)


def test_a_perfect_and_a_useless_classifier() -> None:
    expected = ["spam", "ham", "spam", "ham"]
    perfect = m.classification(expected, expected)
    assert perfect.macro_f1 == perfect.micro_f1 == 1.0 and "(other)" not in perfect.labels
    useless = m.classification(expected, ["whatever"] * 4)
    assert useless.macro_f1 == useless.micro_f1 == 0.0 and useless.labels[-1] == "(other)"


def test_scores_head_to_head_and_differences() -> None:
    scored = m.score(["Paris", "Eight."], ["paris", "Eight."], as_classification=False)
    assert scored.exact_match == 0.5 and scored.normalized_match == 1.0 and scored.token_f1 == 1.0
    record = m.head_to_head([1.0, 0.5, 0.2], [0.5, 0.5, 0.9])
    assert (record.wins, record.ties, record.losses) == (1, 1, 1) and record.win_rate == 0.5
    assert m.verdicts(["candidate", "tie", "baseline", "candidate"]) == m.HeadToHead(2, 1, 1)
    assert m.most_different([1, 0, 0.5, 0.5], [0, 0, 0.4, 1]) == [0, 3, 2], "equal scores are no difference"
    assert m.most_different([1, 1, 1], [0, 0, 0], count=2) == [0, 1], "the earliest first among equals"


def test_judge_verdicts_follow_the_order_of_the_answers() -> None:
    assert read_verdict("A", candidate_first=True) == "candidate"
    assert read_verdict("A", candidate_first=False) == "baseline"
    assert read_verdict("**B**.", candidate_first=True) == "baseline"
    assert read_verdict("Tie", candidate_first=True) == "tie"
    assert read_verdict("I cannot decide", candidate_first=True) == "tie"


def test_examples_are_the_conversation_up_to_the_last_answer() -> None:
    line = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
            {"role": "assistant", "content": "4", "weight": 1},
        ]
    }
    example = example_of(line, "chat")
    assert example == Example(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "2+2?"},
        ],
        "4",
    )
    preference = {
        "input": {"messages": [{"role": "user", "content": "Hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "What?"}],
    }
    assert example_of(preference, "preference") == Example([{"role": "user", "content": "Hi"}], "Hello!")
    assert example_of({"messages": [{"role": "user", "content": "no answer"}]}, "chat") is None
    assert prompt_key([{"role": "user", "content": "Hi  there!"}]) == prompt_key(
        [{"role": "user", "content": "hi there"}]
    )
