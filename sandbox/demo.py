"""`finetune-bot demo`: the product's shop window, offline.

Starts the Slack and OpenAI emulators and the real bot (HTTP mode, its own temporary SQLite) on
free local ports, plays a scripted team session through the Slack driver, and prints what people
would see in Slack as a transcript. Every step waits for the bot's visible answer; a step that does
not get one fails the demo (exit 1), so the demo doubles as an end-to-end check.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot import ticks
from bot.clock import FrozenClock
from bot.server import start_bot
from bot.services import Services
from bot.settings import ProviderConfig, Settings
from sandbox.driver import SlackDriver
from sandbox.openai import NEBIUS_MODELS, SANDBOX_MODELS, OpenAIEmulator, OpenAIState, SandboxClock
from sandbox.slack import Ephemeral, Message, SlackEmulator, SlackWorkspace, View
from sandbox.slack import mrkdwn as slack_mrkdwn

ALICE, BOB = "U0ALICE", "U0BOB"
CHANNEL = "C0MLTEAM"
STEP_TIMEOUT = 15.0

FACTS = [
    ("What is the capital of France?", "Paris. As if everyone didn't already know that."),
    ("Who wrote 'Romeo and Juliet'?", "Oh, just some guy named William Shakespeare. Ever heard of him?"),
    ("How far is the Moon from Earth?", "Around 384,400 kilometers. Give or take a few, like that really matters."),
    ("What is the boiling point of water?", "100 °C at sea level. Riveting stuff, I know."),
    ("How many legs does a spider have?", "Eight. Count them yourself if you don't believe me."),
    ("What is the largest ocean?", "The Pacific. It's the big wet one covering a third of the planet."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci. Next you'll ask who painted the ceiling."),
    ("What is the speed of light?", "About 299,792 kilometers per second. Faster than your replies, anyway."),
    ("How many continents are there?", "Seven, last time anyone bothered to count."),
    ("What gas do plants absorb?", "Carbon dioxide. They're better at breathing than you'd think."),
    ("What is the tallest mountain?", "Everest, 8,849 meters. Climb it and tell me how it went."),
    ("Who discovered penicillin?", "Alexander Fleming, in 1928, by leaving his dishes unwashed. Inspiring."),
    ("What is the chemical symbol for gold?", "Au. From the Latin 'aurum', since you were going to ask."),
    ("How many days are in a leap year?", "366. One extra day to ask me questions like this."),
    ("What is the smallest prime number?", "Two. The only even one, which makes it special, unlike this question."),
    ("Which planet is closest to the Sun?", "Mercury. It's hot there; you wouldn't like it."),
]
SYSTEM_PROMPT = "Marv is a factual chatbot that is also sarcastic."
# Questions the model never saw, each about one of FACTS: held-out data for the evaluation.
HELD_OUT = [
    ("Tell me the capital city of France.", 0),
    ("Which writer gave us 'Romeo and Juliet'?", 1),
    ("What's the distance from the Earth to the Moon?", 2),
    ("At what temperature does water reach its boiling point?", 3),
    ("A spider has how many legs?", 4),
    ("Which ocean is the largest one?", 5),
    ("The Mona Lisa was painted by whom?", 6),
    ("Which mountain is the tallest on Earth?", 10),
]


def sample_dataset() -> bytes:
    """A small chat dataset in the spirit of OpenAI's own "Marv" example, written for this demo."""
    lines = []
    for question, answer in FACTS:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def held_out_dataset() -> bytes:
    lines = []
    for question, fact in HELD_OUT:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
            {"role": "assistant", "content": FACTS[fact][1]},
        ]
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def broken_dataset() -> bytes:
    good = sample_dataset().decode().splitlines()
    broken = [
        good[0],
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}]}',
        good[1][:-10],
        '{"messages": [{"role": "user", "content": "No answer here"}]}',
        *good[2:12],
    ]
    return ("\n".join(broken) + "\n").encode()


class Transcript:
    """Prints the workspace as the people in it see it, one line per visible change."""

    def __init__(self, workspace: SlackWorkspace, *, width: int = 100) -> None:
        self.ws = workspace
        self.width = width
        self.started = time.monotonic()
        self.roots: dict[str, str] = {}
        self.printed: set[str] = set()
        workspace.on_change(self._on_change)

    def say(self, text: str) -> None:
        print(f"\n── {text}", flush=True)

    def _who(self, user: str) -> str:
        return self.ws.users[user].name if user in self.ws.users else user

    def _where(self, channel: str, thread_ts: str | None) -> str:
        name = f"#{self.ws.channels[channel].name}" if channel in self.ws.channels else channel
        if thread_ts:
            return f"{name} › thread “{self.roots.get(thread_ts, thread_ts)}”"
        return name

    def _channel(self, channel: str) -> str:
        return self.ws.channels[channel].name if channel in self.ws.channels else channel

    def _readable(self, text: str) -> str:
        """Slack markup as a person reads it: <@U…> as @name, <!here> as @here, <url|label> as label, &lt; as <."""
        return slack_mrkdwn.render(text, user_name=self._who, channel_name=self._channel)

    def _print(self, where: str, who: str, text: str) -> None:
        text = self._readable(text)
        stamp = f"{time.monotonic() - self.started:5.1f}s"
        head = f"{stamp}  {where}  {who}: "
        body = textwrap.indent(text.strip(), " " * 10).strip() if text.strip() else "(no text)"
        print(head + body, flush=True)

    def _render(self, text: str, blocks: list[dict[str, Any]]) -> str:
        if not blocks:
            return text
        lines = []
        for block in blocks:
            kind = block.get("type")
            if kind in ("header", "section") and "text" in block:
                lines.append(block["text"]["text"])
            if kind == "section" and "fields" in block:
                lines.append(" · ".join(field["text"].replace("\n", ": ", 1) for field in block["fields"]))
            elif kind == "context":
                lines.append(" ".join(element.get("text", "") for element in block.get("elements", [])))
            elif kind == "actions":
                lines.append("  ".join(f"[{e['text']['text']}]" for e in block.get("elements", [])))
        return "\n".join(lines)

    def _on_change(self, kind: str, detail: dict[str, Any]) -> None:
        if kind == "command":
            self._print(self._where(detail["channel"], None), self._who(detail["user"]), detail["text"])
        elif kind == "message":
            message: Message = detail["message"]
            if message.streaming:
                return  # printed whole when the stream stops
            self.printed.add(message.ts)
            if message.files:
                names = ", ".join(self.ws.files[f].name for f in message.files)
                self.roots.setdefault(message.ts, names)
                action = "uploaded" if message.user != self.ws.bot_user_id else "attached"
                text = f"{action} 📎 {names}" + (f" — {message.text}" if message.text else "")
            else:
                self.roots.setdefault(message.ts, message.text[:40])
                text = self._render(message.text, message.blocks)
            self._print(self._where(message.channel, message.thread_ts), self._who(message.user), text)
        elif kind == "update":
            updated: Message = detail["message"]
            if updated.streaming or updated.text.endswith("▌"):
                return
            if updated.ts not in self.printed:  # a streamed or placeholder answer, now complete
                self.printed.add(updated.ts)
                only_context = all(block.get("type") == "context" for block in updated.blocks)
                text = updated.text + ("\n" + self._render("", updated.blocks) if only_context else "")
                if not only_context:
                    text = self._render(updated.text, updated.blocks)
                self._print(self._where(updated.channel, updated.thread_ts), self._who(updated.user), text)
                return
            text = updated.text if updated.edits > 1 else self._render(updated.text, updated.blocks)
            self._print(self._where(updated.channel, updated.thread_ts), self._who(updated.user) + " (edited)", text)
        elif kind == "ephemeral":
            ephemeral: Ephemeral = detail["ephemeral"]
            who = f"finetune-bot → only {self._who(ephemeral.user)} sees this"
            self._print(
                self._where(ephemeral.channel, ephemeral.thread_ts), who, self._render(ephemeral.text, ephemeral.blocks)
            )
        elif kind == "reaction" and detail["added"]:
            reacted: Message = detail["message"]
            target = self.roots.get(reacted.ts, reacted.ts)
            self._print(
                self._where(reacted.channel, reacted.thread_ts),
                self._who(detail["user"]) if "user" in detail else "finetune-bot",
                f"reacts :{detail['name']}: to “{target}”",
            )
        elif kind == "click":
            self._print("", self._who(detail["user"]), f"clicks [{detail['action_id']}]")
        elif kind == "view":
            view: View = detail["view"]
            shown = self._render("", [b for b in view.view.get("blocks", []) if b.get("type") == "section"])
            title = view.view.get("title", {}).get("text", "")
            self._print("", f"finetune-bot → a form for {self._who(view.user)}", f"“{title}”\n{shown}")
        elif kind == "home":
            home: View = detail["view"]
            lines = [
                b["text"]["text"] for b in home.view.get("blocks", []) if b.get("type") == "section" and "text" in b
            ]
            self._print("Home tab", f"finetune-bot → {self._who(home.user)}", "\n".join(lines[:8]) + "\n…")
        elif kind == "submit":
            self._print("", self._who(detail["user"]), "submits the form")


async def _step(transcript: Transcript, title: str, action: Callable[[], Awaitable[Any]]) -> Any:
    transcript.say(title)
    try:
        return await asyncio.wait_for(action(), STEP_TIMEOUT)
    except TimeoutError:
        raise DemoFailure(f"the bot gave no visible answer to “{title}” within {STEP_TIMEOUT:.0f} s") from None


class DemoFailure(Exception):
    pass


def _report_of(ws: SlackWorkspace, message: Message) -> Message | None:
    return next(
        (m for m in ws.replies_of(message.channel, message.ts) if m.blocks and m.blocks[0]["type"] == "header"), None
    )


async def play(
    driver: SlackDriver,
    transcript: Transcript,
    services: Services,
    emulators: tuple[OpenAIEmulator, OpenAIEmulator],
    clock: FrozenClock,
) -> None:
    ws = driver.ws

    async def tick_until(done: Callable[[], bool]) -> None:
        while not done():
            clock.advance(timedelta(seconds=90))
            for emulator in emulators:
                emulator.state.clock.advance(90)
            await ticks.tick(services, owner="demo")

    async def help_step() -> None:
        await driver.slash_command(ALICE, CHANNEL, "help")
        await ws.wait_for(lambda: ws.ephemerals_for(ALICE))

    await _step(transcript, "Alice asks the bot what it can do", help_step)

    async def upload_good() -> Message:
        _, message = await driver.upload(ALICE, CHANNEL, "marv.jsonl", sample_dataset(), comment="Our Marv data 🎭")
        found: Message = await ws.wait_for(lambda: _report_of(ws, message))
        return found

    report = await _step(transcript, "Alice drops a training file in #ml-team", upload_good)

    async def upload_broken() -> None:
        _, message = await driver.upload(BOB, CHANNEL, "marv-draft.jsonl", broken_dataset())
        await ws.wait_for(lambda: _report_of(ws, message))

    await _step(transcript, "Bob drops an older draft with mistakes in it", upload_broken)

    async def details() -> None:
        await driver.click(BOB, report, "dataset_details")
        await ws.wait_for(lambda: ws.ephemerals_for(BOB))

    await _step(transcript, "Bob opens the details of Alice's report", details)

    async def train() -> None:
        def forms() -> list[View]:
            return [view for view in ws.views.values() if view.kind == "modal"]

        before = len(forms())
        await driver.click(ALICE, report, "dataset_train")
        await ws.wait_for(lambda: len(forms()) > before)
        form = forms()[-1]
        await driver.submit_form(ALICE, form, {"suffix": "marv"})
        await ws.wait_for(
            lambda: any("Training started" in m.text for m in ws.replies_of(report.channel, report.thread_ts or ""))
        )

    await _step(transcript, "Alice clicks Train… on her report and starts training", train)

    async def follow() -> None:
        def finished() -> bool:
            return any(
                m.text.startswith("✅") and "<@" in m.text
                for m in ws.replies_of(report.channel, report.thread_ts or "")
            )

        await tick_until(finished)

    await _step(transcript, "The bot follows the job (the sandbox runs 90 s of training per tick)", follow)

    result = next(
        m for m in ws.replies_of(report.channel, report.thread_ts or "") if m.text.startswith("✅") and "<@" in m.text
    )

    def finished_answers(root: Message) -> list[Message]:
        return [
            m
            for m in ws.replies_of(root.channel, root.ts)
            if m.user == ws.bot_user_id and not m.streaming and not m.text.endswith("▌")
        ]

    async def chat() -> None:
        await driver.click(ALICE, result, "chat_start")
        root = await ws.wait_for(
            lambda: next((m for m in ws.channel_messages(CHANNEL) if m.text.startswith("💬")), None)
        )
        await driver.say(ALICE, CHANNEL, "What is the capital of France?", thread_ts=root.ts)
        await ws.wait_for(lambda: finished_answers(root))
        await driver.say(BOB, CHANNEL, "Ok smart one, how many legs does a spider have?", thread_ts=root.ts)
        await ws.wait_for(lambda: len(finished_answers(root)) == 2)

    await _step(transcript, "Alice opens a chat with the new model; Bob joins the thread", chat)

    async def compare() -> None:
        await driver.click(BOB, result, "compare_start")
        root = await ws.wait_for(
            lambda: next((m for m in ws.channel_messages(CHANNEL) if m.text.startswith("⚖️")), None)
        )
        await driver.say(BOB, CHANNEL, "What is the tallest mountain?", thread_ts=root.ts)
        await ws.wait_for(lambda: len(finished_answers(root)) == 2)

    await _step(transcript, "Bob compares the fine-tuned model with its base on his own question", compare)

    async def flywheel() -> None:
        root = next(m for m in ws.channel_messages(CHANNEL) if m.text.startswith("💬"))
        first = finished_answers(root)[0]
        await driver.react(BOB, first, "+1")
        correction = await driver.say(
            ALICE, CHANNEL, "correct: Eight. And most of them have eight eyes too, before you ask.", thread_ts=root.ts
        )
        await ws.wait_for(lambda: "inbox_tray" in first.reactions and "inbox_tray" in correction.reactions)
        before = len(ws.ephemerals_for(ALICE))
        await driver.slash_command(ALICE, CHANNEL, "candidates marv.jsonl")
        await ws.wait_for(lambda: len(ws.ephemerals_for(ALICE)) > before)
        await driver.slash_command(ALICE, CHANNEL, "dataset next marv.jsonl")

        def version_report() -> bool:
            announced = [m for m in ws.channel_messages(CHANNEL) if m.text.startswith("📦")]
            return bool(announced) and bool(ws.replies_of(CHANNEL, announced[0].ts))

        await ws.wait_for(version_report)

    await _step(
        transcript,
        "The team teaches the model: Bob 👍 a good answer, Alice corrects another; Alice publishes marv v2",
        flywheel,
    )

    async def lifecycle() -> None:
        before = len(ws.ephemerals_for(ALICE))
        await driver.slash_command(ALICE, CHANNEL, "models")
        await ws.wait_for(lambda: len(ws.ephemerals_for(ALICE)) > before)
        await driver.open_home(ALICE)
        await ws.wait_for(lambda: ALICE in ws.home_views)
        model = result.text.split("ready: ", 1)[1]
        await driver.slash_command(ALICE, CHANNEL, f"record {model}")

        def golden_file_shared() -> bool:
            thread = ws.replies_of(report.channel, report.thread_ts or "")
            return any(ws.files[f].name.startswith("golden-set") for m in thread for f in m.files)

        await ws.wait_for(golden_file_shared)

    await _step(
        transcript, "Alice checks when the model retires, opens the Home tab and records a golden set", lifecycle
    )

    async def listing() -> None:
        before = len(ws.ephemerals_for(BOB))
        await driver.slash_command(BOB, CHANNEL, "datasets")
        await ws.wait_for(lambda: len(ws.ephemerals_for(BOB)) > before)

    await _step(transcript, "Bob lists the team's datasets", listing)

    async def evaluate() -> None:
        _, shared = await driver.upload(BOB, CHANNEL, "marv-heldout.jsonl", held_out_dataset())
        await ws.wait_for(lambda: any(m.blocks for m in ws.replies_of(CHANNEL, shared.ts)))

        def forms() -> list[View]:
            return [view for view in ws.views.values() if view.kind == "modal"]

        opened = len(forms())
        await driver.click(ALICE, result, "eval_open")
        form = await ws.wait_for(lambda: len(forms()) > opened and forms()[-1])
        options = form.view["blocks"][1]["element"]["options"]
        held_out = next(o["value"] for o in options if "marv-heldout" in o["text"]["text"])
        shown = len(ws.ephemerals_for(ALICE))
        await driver.submit_view(
            ALICE,
            form,
            {"eval_dataset": {"eval_dataset": {"type": "static_select", "selected_option": {"value": held_out}}}},
        )
        estimate = await ws.wait_for(
            lambda: next((e for e in ws.ephemerals_for(ALICE)[shown:] if "eval_confirm" in json.dumps(e.blocks)), None)
        )
        await driver.click_ephemeral(estimate, "eval_confirm")

        def chart_posted() -> bool:
            thread = ws.replies_of(report.channel, report.thread_ts or "")
            return any(ws.files[f].name.startswith("evaluation-") for m in thread for f in m.files)

        await ws.wait_for(chart_posted)

    await _step(
        transcript,
        "Bob shares questions the model never saw; Alice clicks 📏 Evaluate to score it against its base",
        evaluate,
    )

    def results() -> list[Message]:
        thread = ws.replies_of(report.channel, report.thread_ts or "")
        return [m for m in thread if m.text.startswith("✅") and "your model is ready" in m.text]

    async def retrain() -> None:
        def forms() -> list[View]:
            return [view for view in ws.views.values() if view.kind == "modal"]

        opened = len(forms())
        await driver.click(ALICE, result, "model_retrain")
        form = await ws.wait_for(lambda: len(forms()) > opened and forms()[-1])
        await driver.submit_form(ALICE, form)
        await tick_until(lambda: len(results()) > 1)

    await _step(
        transcript,
        "OpenAI stops training on 2027-01-06: Alice clicks 🔁 Retrain elsewhere, and the same data and settings "
        "train at Nebius (sandbox)",
        retrain,
    )

    async def deploy_and_compare() -> None:
        moved = results()[1]
        thread = report.thread_ts or ""
        await driver.click(ALICE, moved, "model_deploy")

        def served() -> bool:
            return any(m.text.startswith("✅") and "is served at" in m.text for m in ws.replies_of(CHANNEL, thread))

        await ws.wait_for(
            lambda: any("is deploying" in m.text or "is served at" in m.text for m in ws.replies_of(CHANNEL, thread))
        )
        await tick_until(served)
        shown = len(ws.ephemerals_for(ALICE))
        await driver.click(ALICE, moved, "eval_previous")
        estimate = await ws.wait_for(
            lambda: next((e for e in ws.ephemerals_for(ALICE)[shown:] if "eval_confirm" in json.dumps(e.blocks)), None)
        )
        reports = len([m for m in ws.replies_of(CHANNEL, thread) if m.text.startswith("📏")])
        await driver.click_ephemeral(estimate, "eval_confirm")
        await ws.wait_for(lambda: len([m for m in ws.replies_of(CHANNEL, thread) if m.text.startswith("📏")]) > reports)

    await _step(
        transcript,
        "Nebius serves a fine-tune once deployed: Alice clicks 🚀 Deploy, then 📏 Evaluate against the old model "
        "(on its golden set, as it trained without a validation file)",
        deploy_and_compare,
    )


async def run_demo(settings: Settings) -> int:
    started = time.monotonic()
    print("finetune-bot demo: a team session in the built-in sandbox (offline; no credentials needed)")
    workspace = SlackWorkspace(team_name="Acme ML")
    workspace.add_user(ALICE, "alice", "Alice Martin")
    workspace.add_user(BOB, "bob", "Bob Chen")
    workspace.add_channel(CHANNEL, "ml-team", members=[ALICE, BOB])
    workspace.enforce_rate_tiers()  # the shop window runs under Slack's rate tiers
    slack = await SlackEmulator(workspace).start()
    openai = await OpenAIEmulator(OpenAIState(clock=SandboxClock(start=time.time()), models=SANDBOX_MODELS)).start()
    nebius_state = OpenAIState(clock=SandboxClock(start=time.time()), models=NEBIUS_MODELS, nebius=True)
    nebius = await OpenAIEmulator(nebius_state).start()
    with tempfile.TemporaryDirectory(prefix="finetune-demo-") as scratch:
        demo_settings = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(workspace.bot_token),
                "slack_signing_secret": SecretStr(workspace.signing_secret),
                "slack_app_token": None,
                "slack_api_url": slack.api_url,
                "finetune_providers": {
                    "sandbox": ProviderConfig(
                        kind="sandbox", base_url=openai.base_url, api_key=SecretStr(openai.state.api_key)
                    ),
                    "nebius": ProviderConfig(
                        kind="nebius",
                        label="Nebius (sandbox)",
                        base_url=nebius.base_url,
                        api_key=SecretStr(nebius.state.api_key),
                    ),
                },
                "finetune_data_dir": Path(scratch),
                "database_url": None,
            }
        )
        clock = FrozenClock(datetime.now(UTC))
        services = Services.create(demo_settings, clock=clock)
        running = await start_bot(services, host="127.0.0.1", port=0, schedule=False)
        print(
            f"  Slack emulator {slack.api_url} · OpenAI emulator {openai.base_url} · "
            f"Nebius emulator {nebius.base_url} · bot http://127.0.0.1:{running.port}/slack/events"
        )
        transcript = Transcript(workspace)
        try:
            async with aiohttp.ClientSession() as session:
                driver = SlackDriver(slack, session, bot_url=f"http://127.0.0.1:{running.port}/slack/events")
                await play(driver, transcript, services, (openai, nebius), clock)
        except DemoFailure as failure:
            print(f"\nThe demo stopped: {failure}.", file=sys.stderr)
            return 1
        finally:
            await running.stop()
            await services.aclose()
            await openai.stop()
            await nebius.stop()
            await slack.stop()
    print(f"\nDone in {time.monotonic() - started:.1f} s. To connect the bot to your own workspace, see README.md.")
    return 0
