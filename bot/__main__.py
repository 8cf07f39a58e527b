"""The `finetune-bot` command line: start, run, demo, sandbox, migrate, validate.

Imports are deferred to the subcommand that needs them, so a quick command does not pay for the
Slack and OpenAI SDKs, and `validate` not even for asyncio or pydantic. Every expected failure ends
in one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.validation_settings import ValidationSettings


class _Version(argparse.Action):
    """``--version``: the installed version is looked up only when asked for (it costs 40 ms of imports)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from bot import __version__

        print(f"finetune-bot {__version__}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-bot",
        description="Fine-tune language models together, without leaving Slack.",
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "start",
        help="run the bot if Slack credentials are set, otherwise the offline demo (the quick start)",
    )
    commands.add_parser("run", help="connect to Slack and serve (Socket Mode with SLACK_APP_TOKEN, else HTTP)")
    commands.add_parser("demo", help="play a scripted team session against the built-in sandbox, offline")
    sandbox = commands.add_parser("sandbox", help="run one emulator alone (openai or slack)")
    sandbox.add_argument("which", choices=["openai", "slack"])
    sandbox.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    sandbox.add_argument("--host", default="127.0.0.1")
    commands.add_parser("migrate", help="create or upgrade the database schema (safe to repeat)")
    validate = commands.add_parser(
        "validate",
        help="check a JSONL training file: exit 0 valid, 1 invalid, 2 unreadable",
        description="Validate a fine-tuning file as the bot does in Slack. Exit status: 0 valid (warnings "
        "allowed), 1 invalid, 2 unreadable file or bad usage.",
    )
    validate.add_argument("path")
    validate.add_argument("--model", help="base model to check and price against (default: FINETUNE_DEFAULT_MODEL)")
    validate.add_argument("--method", choices=["supervised", "dpo"], help="default: dpo for preference data")
    validate.add_argument("--json", action="store_true", help="print exactly one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "validate":
            from bot.validation_settings import load_validation_settings

            return _validate(
                load_validation_settings(), args.path, model=args.model, method=args.method, as_json=args.json
            )
        from bot.settings import load_settings

        settings = load_settings()
        try:
            return _dispatch(args, settings)
        except Exception as error:
            from storage.db import unusable_database

            problem = unusable_database(error, settings.effective_database_url)
            if problem is None:
                raise
            print(f"finetune-bot: {problem}", file=sys.stderr)
            return 2
    except ConfigError as error:
        print(f"finetune-bot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "start":
        if settings.has_slack_credentials:
            return _run(settings)
        print(
            "No Slack credentials (SLACK_BOT_TOKEN with SLACK_APP_TOKEN or SLACK_SIGNING_SECRET) are set, "
            "so here is the offline demo against the built-in sandbox.\n"
            "To connect to your workspace, see README.md, 'Connect to Slack'.\n",
            flush=True,
        )
        return _demo(settings)
    if args.command == "run":
        return _run(settings)
    if args.command == "demo":
        return _demo(settings)
    if args.command == "sandbox":
        return _sandbox(args.which, args.host, args.port)
    if args.command == "migrate":
        return _migrate(settings)
    raise AssertionError(f"unhandled command {args.command}")


def _run(settings: Settings) -> int:
    settings.require_slack()
    settings.require_provider()
    import asyncio

    from bot.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    import asyncio
    import logging
    import signal
    import time

    from pydantic import SecretStr

    from bot.server import start_bot
    from bot.services import Services

    emulator = None
    built_in = [name for name, c in settings.provider_configs().items() if c.kind == "sandbox" and not c.base_url]
    if built_in:
        # The built-in provider: the OpenAI emulator in this process, its jobs running at 60x speed.
        from sandbox.openai import OpenAIEmulator, OpenAIState, SandboxClock

        emulator = await OpenAIEmulator(OpenAIState(clock=SandboxClock(time.time(), speed=60.0))).start()
        reach = {"base_url": emulator.base_url, "api_key": SecretStr(emulator.state.api_key)}
        if settings.finetune_providers:
            providers = {
                name: config.model_copy(update=reach) if name in built_in else config
                for name, config in settings.finetune_providers.items()
            }
            settings = settings.model_copy(update={"finetune_providers": providers})
        else:
            settings = settings.model_copy(
                update={"openai_base_url": emulator.base_url, "openai_api_key": reach["api_key"]}
            )
    services = Services.create(settings)
    for line in services.providers.left_out:
        logging.getLogger("bot").warning(line)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            running = await start_bot(services)
        except BaseException:
            from storage.db import let_sqlite_threads_finish

            await services.db.dispose()
            await let_sqlite_threads_finish()
            raise
        try:
            await stop.wait()
            logging.getLogger("bot").info("shutting down: no new work; waiting for in-flight work")
        finally:
            await running.shutdown(services)
    finally:
        await services.aclose()
        if emulator is not None:
            await emulator.stop()


def _demo(settings: Settings) -> int:
    import asyncio

    from sandbox.demo import run_demo

    return asyncio.run(run_demo(settings))


def _sandbox(which: str, host: str, port: int) -> int:
    import asyncio
    import contextlib

    if which == "openai":
        from sandbox.openai import serve_forever
    else:
        from sandbox.slack import serve_forever
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(port, host))
    return 0


def _validate(settings: ValidationSettings, path: str, *, model: str | None, method: str | None, as_json: bool) -> int:
    from pathlib import Path

    from bot.datasets.render import report_as_text
    from bot.datasets.validate import ValidationOptions, validate_path

    options = ValidationOptions(
        model=model or settings.default_model,
        method=method,
        max_bytes=settings.max_file_bytes,
        prices=settings.training_prices,
    )
    # A file's text may hold lone surrogates (a "\ud800" escape): shown escaped, never a crash.
    sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    target = Path(path)
    if target.is_dir():
        print(f"finetune-bot: {path} is a folder; give the path of a .jsonl file.", file=sys.stderr)
        return 2
    try:
        report = validate_path(target, options)
    except OSError as error:
        print(f"finetune-bot: cannot read {path}: {error.strerror or error}.", file=sys.stderr)
        return 2
    if as_json:
        import json

        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(report_as_text(report, name=target.name))
    return 0 if report.valid else 1


def _migrate(settings: Settings) -> int:
    from storage.db import head_revision, run_migrations

    before, after = run_migrations(settings.effective_database_url)
    where = settings.effective_database_url.split("@")[-1]
    if before == after:
        print(f"Database {where} is already at revision {after}; nothing to do.")
    else:
        print(f"Database {where} migrated from {before or 'empty'} to {after} (head {head_revision()}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
