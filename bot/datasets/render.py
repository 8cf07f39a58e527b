"""The report as plain text, for the command line."""

from __future__ import annotations

from bot.datasets.report import CODE_TITLES, Issue, Report, format_label, grouped


def _where(issue: Issue) -> str:
    return "file" if issue.line is None else f"line {issue.line}"


def _section(title: str, issues: list[Issue], counts: dict[str, int]) -> list[str]:
    lines = [title]
    for code, members in grouped(issues).items():
        lines.append(f"  {code} ({CODE_TITLES.get(code, code)}): {counts.get(code, len(members))}")
        lines += [f"    {_where(issue)}: {issue.message}" for issue in members]
        extra = counts.get(code, len(members)) - len(members)
        if extra > 0:
            lines.append(f"    … and {extra:,} more")
    return lines


def report_as_text(report: Report, *, name: str) -> str:
    verdict = "valid" if report.valid else "INVALID"
    lines = [f"{name}: {verdict} — {format_label(report)}, {report.examples:,} examples, method {report.method}"]
    if report.errors:
        lines += _section("Errors:", report.errors, report.error_counts)
    if report.warnings:
        lines += _section("Warnings:", report.warnings, report.warning_counts)
    tokens, billing = report.tokens, report.billing
    lines.append(
        f"Tokens per example ({billing.model}): min {tokens.min:,}, mean {tokens.mean:,.1f}, p50 {tokens.p50:,}, "
        f"p95 {tokens.p95:,}, max {tokens.max:,}; total {tokens.total:,}"
    )
    cost = "unknown" if billing.estimated_cost_usd is None else f"${billing.estimated_cost_usd:,.2f}"
    lines.append(
        f"Training: {billing.epochs} epochs × capped tokens = {billing.billed_tokens:,} billed tokens, about {cost}"
    )
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines)
