"""Every configured provider by name, each with its own credentials and calendar.

A row names the provider it was made at (a job, a chat, a golden set, an evaluation's sides); the
name "" (rows from before providers were recorded) and a reference without ``@provider`` mean the
default provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bot.clock import Clock
from bot.errors import NotFound
from bot.mrkdwn import escape
from bot.providers.openai_compatible import build_provider
from bot.providers.types import FineTuneProvider
from bot.settings import Settings


class Providers:
    def __init__(self, adapters: dict[str, FineTuneProvider], *, default: str, left_out: list[str]) -> None:
        self._adapters = adapters
        self.default_name = default
        # One line for each configured provider that could not be used (said at start, shown on /readyz).
        self.left_out = left_out

    def get(self, name: str | None = None) -> FineTuneProvider:
        """The provider called ``name`` (the default for None or "")."""
        adapter = self._adapters.get(name or self.default_name)
        if adapter is None:
            raise NotFound(
                f"No provider `{escape(name or '')}` is configured here; the bot trains at "
                f"{', '.join(f'`{known}`' for known in self._adapters)}."
            )
        return adapter

    def label_of(self, name: str | None) -> str:
        """How people see a row's provider named, even one no longer configured (then its stored name)."""
        adapter = self._adapters.get(name or self.default_name)
        return adapter.label if adapter is not None else (name or self.default_name)

    def name_of(self, name: str | None) -> str:
        """The stored name of a row's provider, with "" read as the default."""
        return name or self.default_name

    @property
    def default(self) -> FineTuneProvider:
        return self._adapters[self.default_name]

    @property
    def several(self) -> bool:
        return len(self._adapters) > 1

    def __iter__(self) -> Iterator[FineTuneProvider]:
        return iter(self._adapters.values())

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()


def build_providers(
    settings: Settings, *, clock: Clock | None = None, observe: Callable[[str, str], None] | None = None
) -> Providers:
    """An adapter for every usable provider; a misconfigured one is left out and named in ``left_out``."""
    usable, left_out = settings.usable_providers() if settings.finetune_providers else (settings.provider_configs(), [])

    def observer(name: str) -> Callable[[str], None] | None:
        if observe is None:
            return None
        return lambda outcome: observe(name, outcome)

    adapters: dict[str, FineTuneProvider] = {
        name: build_provider(name, config, settings, clock=clock, observe=observer(name))
        for name, config in usable.items()
    }
    return Providers(adapters, default=settings.default_provider, left_out=left_out)
