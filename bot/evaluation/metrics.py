"""Evaluation metrics: pure functions of expected and predicted answers, no I/O.

Exact match compares the texts as they are (outer whitespace aside); normalized match compares them
after lower-casing, removing punctuation and collapsing whitespace, so "Paris." matches "paris".
When the expected answers are short labels (a classification task) each label gets precision,
recall and F1, averaged two ways: macro (every class counts the same) and micro (every example
counts the same). Free text gets a token-overlap F1, the one SQuAD uses.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

OTHER_LABEL = "(other)"
# A task is a classification when its expected answers are few distinct short labels.
LABEL_MAX_WORDS = 4
LABEL_MAX_CLASSES = 30
LABEL_MIN_REPEAT = 1.5  # examples per class, on average: labels recur

_PUNCTUATION = {ord(c): " " for c in string.punctuation}


def normalize(text: str) -> str:
    """Lower case, punctuation (ASCII and Unicode) as spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCTUATION)
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(text.split())


def exact_match(expected: str, predicted: str) -> bool:
    return expected.strip() == predicted.strip()


def normalized_match(expected: str, predicted: str) -> bool:
    return normalize(expected) == normalize(predicted)


def token_f1(expected: str, predicted: str) -> float:
    """Overlap of the normalized words of both answers, as an F1 between 0 and 1."""
    truth, guess = normalize(expected).split(), normalize(predicted).split()
    if not truth or not guess:
        return float(truth == guess)
    common = sum((Counter(truth) & Counter(guess)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(guess), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def looks_like_classification(expected: Sequence[str]) -> bool:
    """Short answers drawn from a small set of labels that recur."""
    labels = [normalize(answer) for answer in expected]
    if not labels or any(not label or len(label.split()) > LABEL_MAX_WORDS for label in labels):
        return False
    classes = len(set(labels))
    return 2 <= classes <= LABEL_MAX_CLASSES and len(labels) / classes >= LABEL_MIN_REPEAT


@dataclass(frozen=True)
class ClassScores:
    label: str
    support: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Classification:
    """Per-class scores, their averages, and the confusion matrix (rows expected, columns predicted)."""

    classes: list[ClassScores]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    labels: list[str]
    confusion: list[list[int]]


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def classification(expected: Sequence[str], predicted: Sequence[str]) -> Classification:
    """Scores per expected label; a prediction that is none of the labels counts as ``(other)``.

    ``(other)`` is a column of the confusion matrix, never a class: it is a miss for the expected
    class (a false negative) and a false positive for no class.
    """
    truth = [normalize(answer) for answer in expected]
    known = sorted(set(truth))
    guesses = [guess if guess in known else OTHER_LABEL for guess in (normalize(p) for p in predicted)]
    columns = known + ([OTHER_LABEL] if OTHER_LABEL in guesses else [])
    index = {label: position for position, label in enumerate(columns)}
    confusion = [[0] * len(columns) for _ in known]
    for actual, guess in zip(truth, guesses, strict=True):
        confusion[index[actual]][index[guess]] += 1
    scores = []
    true_positives = false_positives = false_negatives = 0
    for row, label in enumerate(known):
        hits = confusion[row][row]
        predicted_as = sum(confusion[other][row] for other in range(len(known)))
        support = sum(confusion[row])
        precision = hits / predicted_as if predicted_as else 0.0
        recall = hits / support if support else 0.0
        scores.append(ClassScores(label, support, precision, recall, _f1(precision, recall)))
        true_positives += hits
        false_positives += predicted_as - hits
        false_negatives += support - hits
    micro_precision = true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    micro_recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    count = len(scores) or 1
    return Classification(
        classes=scores,
        macro_precision=sum(s.precision for s in scores) / count,
        macro_recall=sum(s.recall for s in scores) / count,
        macro_f1=sum(s.f1 for s in scores) / count,
        micro_precision=micro_precision,
        micro_recall=micro_recall,
        micro_f1=_f1(micro_precision, micro_recall),
        labels=columns,
        confusion=confusion,
    )


@dataclass(frozen=True)
class ModelScores:
    """One model's scores on an evaluation set."""

    examples: int
    exact_match: float
    normalized_match: float
    token_f1: float
    per_example_f1: list[float] = field(repr=False)
    classification: Classification | None = None


def score(expected: Sequence[str], predicted: Sequence[str], *, as_classification: bool) -> ModelScores:
    count = len(expected) or 1
    overlaps = [token_f1(e, p) for e, p in zip(expected, predicted, strict=True)]
    return ModelScores(
        examples=len(expected),
        exact_match=sum(exact_match(e, p) for e, p in zip(expected, predicted, strict=True)) / count,
        normalized_match=sum(normalized_match(e, p) for e, p in zip(expected, predicted, strict=True)) / count,
        token_f1=sum(overlaps) / count,
        per_example_f1=overlaps,
        classification=classification(expected, predicted) if as_classification else None,
    )


@dataclass(frozen=True)
class HeadToHead:
    wins: int
    ties: int
    losses: int

    @property
    def win_rate(self) -> float:
        """Wins over decided and tied examples, a tie counting half."""
        total = self.wins + self.ties + self.losses
        return (self.wins + self.ties / 2) / total if total else 0.0


def head_to_head(candidate: Sequence[float], baseline: Sequence[float]) -> HeadToHead:
    """Per example, the candidate wins when its score is higher than the baseline's."""
    wins = sum(c > b for c, b in zip(candidate, baseline, strict=True))
    losses = sum(c < b for c, b in zip(candidate, baseline, strict=True))
    return HeadToHead(wins, len(candidate) - wins - losses, losses)


def verdicts(judged: Sequence[str]) -> HeadToHead:
    """The judge's verdicts (``candidate``, ``baseline`` or ``tie``) as a head-to-head record."""
    wins, losses = judged.count("candidate"), judged.count("baseline")
    return HeadToHead(wins, len(judged) - wins - losses, losses)


def most_different(candidate: Sequence[float], baseline: Sequence[float], *, count: int = 5) -> list[int]:
    """Positions where the two models' scores differ most, largest gap first (ties: earliest first)."""
    gaps = [(abs(c - b), -position) for position, (c, b) in enumerate(zip(candidate, baseline, strict=True))]
    ranked = sorted(gaps, reverse=True)
    return [-negative for gap, negative in ranked[:count] if gap > 0]
