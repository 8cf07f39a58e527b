"""From a scan to the report a person acts on: format, errors by line, tokens, epochs and cost."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.datasets.validator import FORMATS, LISTED_PER_CODE, FormatStats, Scan, Tally
from bot.models import catalog

MIN_EXAMPLES = 10
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

FILE_LEVEL_ERRORS = ("empty_file", "file_too_large", "too_few_examples", "unsupported_format")
UNMATCHED_OBJECT_CODE = {
    "chat": "missing_messages_list",
    "preference": "missing_input",
    "prompt_completion": "missing_prompt",
}
UNMATCHED_OBJECT_MESSAGE = {
    "chat": 'The example has no "messages" list.',
    "preference": 'The example has no "input" object.',
    "prompt_completion": 'The example has no "prompt".',
}
FORMAT_NAMES = {"chat": "chat", "preference": "preference (DPO)", "prompt_completion": "prompt-completion"}


@dataclass(frozen=True)
class Issue:
    line: int | None
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class TokenStats:
    total: int = 0
    min: int = 0
    max: int = 0
    mean: float = 0.0
    p50: int = 0
    p95: int = 0

    @classmethod
    def from_histogram(cls, histogram: Counter[int]) -> TokenStats:
        n = sum(histogram.values())
        if not n:
            return cls()
        ordered = sorted(histogram.items())
        total = sum(tokens * count for tokens, count in ordered)

        def percentile(p: float) -> int:
            # Nearest rank: the smallest value with at least p of the examples at or below it.
            rank = max(1, math.ceil(p * n))
            seen = 0
            for tokens, count in ordered:
                seen += count
                if seen >= rank:
                    return tokens
            return ordered[-1][0]

        return cls(total, ordered[0][0], ordered[-1][0], round(total / n, 2), percentile(0.5), percentile(0.95))


@dataclass(frozen=True)
class Billing:
    model: str
    epochs: int
    billed_tokens: int
    estimated_cost_usd: float | None
    token_limit: int
    price_per_million: float | None


@dataclass(frozen=True)
class Report:
    format: str
    examples: int
    valid: bool
    method: str
    errors: list[Issue]
    error_counts: dict[str, int]
    warnings: list[Issue]
    warning_counts: dict[str, int]
    tokens: TokenStats
    billing: Billing
    notes: list[str] = field(default_factory=list)
    common_system_prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The command line's contract: exactly these keys."""
        return {
            "format": self.format,
            "examples": self.examples,
            "valid": self.valid,
            "errors": [issue.to_json() for issue in self.errors],
            "error_counts": dict(self.error_counts),
            "warnings": [issue.to_json() for issue in self.warnings],
            "tokens": {
                "total": self.tokens.total,
                "min": self.tokens.min,
                "max": self.tokens.max,
                "mean": self.tokens.mean,
                "p50": self.tokens.p50,
                "p95": self.tokens.p95,
            },
            "billing": {
                "model": self.billing.model,
                "epochs": self.billing.epochs,
                "billed_tokens": self.billing.billed_tokens,
                "estimated_cost_usd": self.billing.estimated_cost_usd,
            },
        }

    def row_fields(self) -> dict[str, Any]:
        """The Dataset row's columns that come from its report."""
        return {
            "format": self.format,
            "valid": self.valid,
            "examples": self.examples,
            "total_tokens": self.tokens.total,
            "report": self.to_storage(),
        }

    def to_storage(self) -> dict[str, Any]:
        """What the Dataset row keeps: the contract plus what Slack views need later."""
        return {
            **self.to_json(),
            "method": self.method,
            "warning_counts": dict(self.warning_counts),
            "notes": list(self.notes),
            "common_system_prompt": self.common_system_prompt,
            "token_limit": self.billing.token_limit,
            "price_per_million": self.billing.price_per_million,
        }

    @classmethod
    def from_storage(cls, stored: dict[str, Any]) -> Report:
        """The report a Dataset row keeps, read back. Rows written before a key existed get its default
        (supervised, no warnings counted, no notes); keys added beside the report (a version's diff) are left."""
        billing, tokens = stored["billing"], stored["tokens"]
        return cls(
            format=stored["format"],
            examples=stored["examples"],
            valid=stored["valid"],
            method=stored.get("method", "supervised"),
            errors=[Issue(**issue) for issue in stored["errors"]],
            error_counts=dict(stored["error_counts"]),
            warnings=[Issue(**issue) for issue in stored["warnings"]],
            warning_counts=dict(stored.get("warning_counts", {})),
            tokens=TokenStats(**tokens),
            billing=Billing(
                model=billing["model"],
                epochs=billing["epochs"],
                billed_tokens=billing["billed_tokens"],
                estimated_cost_usd=billing["estimated_cost_usd"],
                token_limit=stored.get("token_limit", 0),
                price_per_million=stored.get("price_per_million"),
            ),
            notes=list(stored.get("notes", [])),
            common_system_prompt=stored.get("common_system_prompt"),
        )


def default_epochs(examples: int) -> int:
    """OpenAI's rule as the cookbook writes it, integer arithmetic included."""
    epochs = TARGET_EPOCHS
    if examples == 0:
        return epochs
    if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // examples)
    elif examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // examples)
    return epochs


def default_method(fmt: str) -> str:
    return "dpo" if fmt == "preference" else "supervised"


def choose_format(scan: Scan) -> str:
    votes = {fmt: stats.lines.count for fmt, stats in scan.per_format.items() if stats.lines.count}
    if not votes:
        return "unknown"
    best = max(votes.values())
    leaders = [fmt for fmt in FORMATS if votes.get(fmt) == best]
    return scan.first_format if scan.first_format in leaders and scan.first_format else leaders[0]


def _unsupported(fmt: str, method: str, model: str) -> str | None:
    info = catalog.lookup(model)
    if fmt == "prompt_completion" and not catalog.is_completion_model(model):
        return f"Prompt-completion data cannot train {model}, a chat model; convert it to chat messages."
    if fmt in ("chat", "preference") and catalog.is_completion_model(model):
        return f"{model} only trains on prompt-completion data."
    if fmt == "preference" and method != "dpo":
        return "Preference data trains with the dpo method only, not supervised."
    if fmt == "chat" and method == "dpo":
        return "Chat data trains with the supervised method; dpo needs preference data."
    if info is not None and method not in info.methods:
        return f"{model} cannot be trained with {method}."
    return None


def build_report(
    scan: Scan,
    *,
    model: str,
    method: str | None,
    prices: dict[str, float],
    file_too_large: tuple[int, int] | None = None,
) -> Report:
    """Decide the format, gather errors and warnings, and price the training."""
    fmt = choose_format(scan)
    method = method or default_method(fmt)
    chosen = scan.per_format.get(fmt, FormatStats())
    errors, warnings = _line_problems(scan, fmt, chosen)
    errors.update(_file_problems(scan, fmt, method, model, file_too_large))
    if chosen.with_system and chosen.without_system:
        total = chosen.with_system + chosen.without_system
        sentence = (
            f"{chosen.with_system} of {total} examples have a system message and {chosen.without_system} "
            "do not; the model will expect whichever it saw most."
        )
        warnings["inconsistent_system_message"] = Tally(1, [(None, sentence)])
    billing = _billing(scan, chosen, model=model, prices=prices)
    return Report(
        format=fmt,
        examples=scan.examples,
        valid=not any(tally.count for tally in errors.values()),
        method=method,
        errors=_listed(errors),
        error_counts={code: tally.count for code, tally in sorted(errors.items()) if tally.count},
        warnings=_listed(warnings),
        warning_counts={code: tally.count for code, tally in sorted(warnings.items()) if tally.count},
        tokens=TokenStats.from_histogram(chosen.tokens),
        billing=billing,
        notes=_notes(scan, chosen, model=model, price=billing.price_per_million),
        common_system_prompt=chosen.system_prompts.most_common(1)[0][0] if chosen.system_prompts else None,
    )


def _line_problems(scan: Scan, fmt: str, chosen: FormatStats) -> tuple[dict[str, Tally], dict[str, Tally]]:
    """Errors and warnings by code, from the lines: the chosen format's own, objects of no format, and
    lines of another format than most of the file."""
    errors: dict[str, Tally] = dict(scan.errors)
    warnings: dict[str, Tally] = dict(scan.warnings)
    for code, tally in chosen.errors.items():
        errors.setdefault(code, Tally()).merge(tally)
    for code, tally in chosen.warnings.items():
        warnings.setdefault(code, Tally()).merge(tally)
    if scan.unknown_objects.count:
        code = UNMATCHED_OBJECT_CODE.get(fmt, "missing_messages_list")
        unmatched = Tally(
            scan.unknown_objects.count,
            [(line, UNMATCHED_OBJECT_MESSAGE.get(fmt, msg)) for line, msg in scan.unknown_objects.first],
        )
        errors.setdefault(code, Tally()).merge(unmatched)
    for other, stats in scan.per_format.items():
        if other != fmt and stats.lines.count:
            sentence = f"The line is {FORMAT_NAMES[other]} data, but most of the file is {FORMAT_NAMES.get(fmt, fmt)}."
            errors.setdefault("mixed_formats", Tally()).merge(
                Tally(stats.lines.count, [(line, sentence) for line, _ in stats.lines.first])
            )
    return errors, warnings


def _file_problems(
    scan: Scan, fmt: str, method: str, model: str, file_too_large: tuple[int, int] | None
) -> dict[str, Tally]:
    """Errors about the file as a whole: its size, its number of examples, what the model can train on."""
    errors: dict[str, Tally] = {}
    if file_too_large is not None:
        size, limit_bytes = file_too_large
        sentence = (
            f"The file is {size / 2**20:,.1f} MB; the limit is {limit_bytes / 2**20:,.0f} MB (FINETUNE_MAX_FILE_MB)."
        )
        errors["file_too_large"] = Tally(1, [(None, sentence)])
    elif scan.examples == 0:
        errors["empty_file"] = Tally(1, [(None, "The file has no examples: every line is empty.")])
    elif scan.examples < MIN_EXAMPLES:
        errors["too_few_examples"] = Tally(
            1, [(None, f"The file has {scan.examples} example(s); fine-tuning needs at least {MIN_EXAMPLES}.")]
        )
    if fmt != "unknown":
        reason = _unsupported(fmt, method, model)
        if reason is not None:
            errors["unsupported_format"] = Tally(1, [(None, reason)])
    return errors


def _billing(scan: Scan, chosen: FormatStats, *, model: str, prices: dict[str, float]) -> Billing:
    """Default epochs times the tokens of each example up to the model's limit, at the configured price
    (or the catalogue's)."""
    info = catalog.lookup(model)
    limit = info.example_token_limit if info else 65_536
    epochs = default_epochs(scan.examples)
    billed = epochs * sum(min(t, limit) * count for t, count in chosen.tokens.items())
    price = prices.get(catalog.base_model_id(model), prices.get(model))
    if price is None and info is not None:
        price = info.training_price_per_million
    cost = None if price is None else round(billed / 1_000_000 * price, 4)
    return Billing(model, epochs, billed, cost, limit, price)


def _notes(scan: Scan, chosen: FormatStats, *, model: str, price: float | None) -> list[str]:
    notes = []
    if scan.opens_pretty_printed:
        notes.append(
            "This looks like pretty-printed JSON: one object spread over several lines. JSONL needs each "
            "example on a single line (for example `jq -c . file.json > file.jsonl`)."
        )
    if chosen.has_images:
        notes.append("Images add no text tokens to these counts; OpenAI bills image inputs separately.")
    if price is None:
        notes.append(f"No training price is known for {model}, so the cost is unknown.")
    return notes


def _listed(tallies: dict[str, Tally]) -> list[Issue]:
    issues = [
        Issue(line, code, message) for code, tally in tallies.items() for line, message in tally.first[:LISTED_PER_CODE]
    ]
    return sorted(issues, key=lambda issue: (issue.line is not None, issue.line or 0, issue.code))


CODE_TITLES = {
    "invalid_utf8": "Not UTF-8",
    "invalid_json": "Not valid JSON",
    "not_an_object": "Not a JSON object",
    "mixed_formats": "Mixed formats",
    "missing_messages_list": "No messages list",
    "message_not_object": "Message is not an object",
    "message_missing_key": "Message missing a key",
    "message_unrecognized_key": "Unrecognized message key",
    "unrecognized_role": "Unknown role",
    "missing_content": "Missing content",
    "invalid_content": "Invalid content",
    "example_missing_assistant_message": "No assistant message",
    "invalid_weight": "Invalid weight",
    "invalid_tool_call": "Invalid tool call",
    "missing_input": "No input",
    "missing_preferred_output": "No preferred output",
    "missing_non_preferred_output": "No non-preferred output",
    "invalid_preference_output": "Invalid preference output",
    "missing_prompt": "No prompt",
    "missing_completion": "No completion",
    "too_few_examples": "Too few examples",
    "file_too_large": "File too large",
    "empty_file": "Empty file",
    "unsupported_format": "Format cannot train this model or method",
    "blank_line": "Blank lines",
    "example_too_long": "Examples over the token limit",
    "inconsistent_system_message": "Inconsistent system message",
    "duplicate_example": "Duplicate examples",
    "all_weights_zero": "All weights zero",
    "tool_arguments_not_object": "Tool arguments not a JSON object",
    "unreadable_value": "Value the API cannot read",
}


def grouped(issues: list[Issue]) -> dict[str, list[Issue]]:
    """Issues by code, in the order codes first appear."""
    groups: dict[str, list[Issue]] = {}
    for issue in issues:
        groups.setdefault(issue.code, []).append(issue)
    return groups


def format_label(report: Report) -> str:
    return FORMAT_NAMES.get(report.format, "unknown format")
