"""``python -m trainer serve --config FILE`` runs the server (``example``: with SmolLM2, as ./dev server
does); ``train JOB_DIR`` runs one job (the server
starts it); ``tiny-model DIR --texts FILE`` builds the tiny model tests and the demo use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="run one job (the server starts this)")
    train.add_argument("job_dir", type=Path)
    tiny = commands.add_parser("tiny-model", help="build the tiny test model")
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--texts", type=Path, action="append", default=[])
    serve = commands.add_parser("serve", help="run the fine-tuning server")
    serve.add_argument("--config", type=Path, required=True)
    commands.add_parser("example", help="run the server with SmolLM2-135M-Instruct (what ./dev server does)")
    arguments = parser.parse_args(argv)
    if arguments.command == "example":
        from trainer import example

        return example.main()
    if arguments.command == "train":
        from trainer import training

        return training.run(arguments.job_dir)
    if arguments.command == "tiny-model":
        from trainer import tiny as tiny_model

        texts = [text for path in arguments.texts for text in tiny_model.texts_of(path)]
        tiny_model.build(arguments.directory, texts)
        return 0
    from trainer import server

    return server.main(arguments.config)


if __name__ == "__main__":
    sys.exit(main())
