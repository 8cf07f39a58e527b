"""The deployment files keep the properties that a real container run showed they need.

No container engine runs in CI, so these read the files; the figures from building and running them
(with Debian's docker.io and compose) are in the note of the change that made them so.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "compose.yaml").read_text()
CADDYFILE = (ROOT / "deploy" / "Caddyfile").read_text()


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, one string each, comments and continuations folded."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [step.strip() for step in re.split(r"\n(?=[A-Z]+ )", "\n".join(lines).replace("\\\n", " ")) if step.strip()]


def test_the_image_builds_without_a_registry_frontend() -> None:
    # BuildKit pulls the frontend named by a syntax directive: offline and mirror-only builds fail.
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, flags=re.MULTILINE | re.IGNORECASE)


def test_the_dependency_layer_depends_on_the_lock_file_alone() -> None:
    steps = instructions(DOCKERFILE)
    dependencies = next(i for i, step in enumerate(steps) if "--no-install-project" in step)
    copied = " ".join(step for step in steps[:dependencies] if step.startswith("COPY"))
    assert "pyproject.toml" in copied and "uv.lock" in copied
    assert "README" not in copied and "bot" not in copied.split(), "an edit there would re-download everything"


def test_the_runtime_user_can_write_only_the_data_folder() -> None:
    runtime = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    venv_copy = next(step for step in instructions("FROM " + runtime) if step.startswith("COPY") and ".venv" in step)
    assert "--chown" not in venv_copy, "the bot's own code stays root's"
    assert "chown finetune /data" in runtime and "USER finetune" in runtime


def test_both_replicas_run_one_image() -> None:
    bot = COMPOSE.split("x-bot: &bot", 1)[1].split("\nservices:", 1)[0]
    assert re.search(r"^\s+image: \S+", bot, flags=re.MULTILINE), "without a tag each replica builds its own"
    assert re.search(r"^  bot-1: \*bot$", COMPOSE, flags=re.MULTILINE)
    assert re.search(r"^  bot-2: \*bot$", COMPOSE, flags=re.MULTILINE)


def test_postgresql_is_ready_only_when_it_answers_on_tcp() -> None:
    check = next(line for line in COMPOSE.splitlines() if "pg_isready" in line)
    assert re.search(r"pg_isready -h 127\.0\.0\.1\b", check), "the Unix socket answers during the image's init"


def test_the_proxy_retries_checks_readiness_and_keeps_metrics_inside() -> None:
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile" in COMPOSE
    proxy = COMPOSE.split("\n  proxy:\n", 1)[1].split("\n  postgres:\n", 1)[0]
    assert "healthcheck:" in proxy, "README says the proxy shows healthy"
    for directive in ("lb_try_duration", "request_buffers", "health_uri /readyz", "respond /metrics 404"):
        assert directive in CADDYFILE, directive
    seconds = float(re.search(r"lb_try_duration (\d+(?:\.\d+)?)s", CADDYFILE).group(1))  # type: ignore[union-attr]
    assert seconds < 3, "Slack gives up on a request after 3 seconds"
