"""Prometheus metrics: what a platform team watches. One registry per running bot, served on /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Slack gives 3 s to acknowledge; the buckets resolve well below that.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
TICK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The bot's counters, in a registry of their own, so two bots in one process (tests) never mix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._last_outcomes: dict[str, str] = {}
        self.slack_requests = Counter(
            "finetune_slack_requests",
            "Slack requests handled, by kind (event type, command, block_actions, view_submission).",
            ["kind"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "finetune_slack_ack_seconds",
            "Time from a Slack request reaching the bot to its acknowledgement.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "finetune_provider_calls",
            "Calls to each fine-tuning provider, by outcome (ok, or the error's kind).",
            ["outcome", "provider"],
            registry=self.registry,
        )
        self.active_jobs = Gauge(
            "finetune_active_jobs", "Fine-tuning jobs the bot is following, at the last tick.", registry=self.registry
        )
        self.tick_seconds = Histogram(
            "finetune_tick_seconds", "Duration of a scheduler tick.", buckets=TICK_BUCKETS, registry=self.registry
        )

    def provider_call(self, provider: str, outcome: str) -> None:
        self.provider_calls.labels(outcome=outcome, provider=provider).inc()
        self._last_outcomes[provider] = outcome

    def last_outcome(self, provider: str) -> str:
        """How the provider's last call went ("ok", or the error's kind), for /readyz."""
        return self._last_outcomes.get(provider, "not called yet")

    def render(self) -> bytes:
        return generate_latest(self.registry)
