"""finetune-bot: fine-tune language models together, without leaving Slack."""


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked for.

    importlib.metadata costs about 40 ms to import, a fifth of `finetune-bot validate` on a small file.
    """
    if name != "__version__":
        raise AttributeError(f"module 'bot' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finetune-bot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"
