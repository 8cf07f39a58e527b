"""The bot's own pace for Slack's rate tiers, per workspace and method.

Slack counts calls per method, workspace and app (docs.slack.dev/apis/web-api/rate-limits):
chat.update is Tier 3 (about 50 a minute), chat.appendStream Tier 4 (about 100). Several chats
answering at once in one workspace share those budgets, so each answer's edits and appends ask
here first. An edit or append that would overrun is skipped (the text waits for the next one);
the final one waits its turn, since it must go out.
"""

from __future__ import annotations

from collections import deque

from bot.clock import Clock

WINDOW_SECONDS = 60.0
# Calls the bot allows itself per window: four fifths of each tier, leaving room for other work.
BUDGETS = {"chat.update": 40, "chat.appendStream": 80}
# Of which intermediate edits leave this many for final ones, so a finished answer rarely waits.
KEPT_FOR_FINAL = 15


class SlackPacer:
    def __init__(self, clock: Clock, budgets: dict[str, int] | None = None) -> None:
        self._clock = clock
        self._budgets = dict(BUDGETS if budgets is None else budgets)
        self._calls: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, team_id: str, method: str) -> deque[float]:
        calls = self._calls.setdefault((team_id, method), deque())
        now = self._clock.monotonic()
        while calls and now - calls[0] >= WINDOW_SECONDS:
            calls.popleft()
        return calls

    def try_take(self, team_id: str, method: str, *, leave: int = 0) -> bool:
        """Count a call if the workspace's budget for ``method`` allows it now, keeping ``leave`` calls
        for the calls that must go (an answer's final edit); False to skip it."""
        budget = self._budgets.get(method)
        if budget is None:
            return True
        calls = self._recent(team_id, method)
        if len(calls) >= budget - leave:
            return False
        calls.append(self._clock.monotonic())
        return True

    async def take(self, team_id: str, method: str) -> None:
        """Wait (on the injected clock) until a call of ``method`` fits the budget, then count it."""
        while not self.try_take(team_id, method):
            calls = self._recent(team_id, method)
            await self._clock.sleep(max(0.05, WINDOW_SECONDS - (self._clock.monotonic() - calls[0])))
