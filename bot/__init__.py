"""finetune-bot: fine-tune language models together, without leaving Slack."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("finetune-bot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
