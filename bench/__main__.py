"""`./dev bench [validator [MB …] | ticks | load | replicas]`: run the benchmarks and print their figures as Markdown.

`replicas` needs PostgreSQL (TEST_DATABASE_URL, else the local server's database `test`), so `all` leaves it out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench import load, replicas, ticks, validator
from bot.datasets import speedups


def validator_table(sizes: tuple[int, ...]) -> None:
    print("## Validator against the cookbook baseline (same run)\n")
    print(
        "| file | examples | validator MB/s | baseline MB/s | speed-up | validator peak RSS (sum) | "
        "validator peak PSS (sum) | baseline peak RSS | same token total |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in validator.run(sizes):
        print(
            f"| {row['megabytes']} MB | {row['examples']:,} | {row['validator_mb_s']} | {row['baseline_mb_s']} | "
            f"{row['speedup']}× | {row['validator_peak_rss_mib']} MiB | {row['validator_peak_pss_mib']} MiB | "
            f"{row['baseline_peak_rss_mib']} MiB | {row['same_token_total']} |"
        )
    tables = "compiled (bot/datasets/_speedups.c)" if speedups.compiled() else "Python twins (no C compiler)"
    print(f"\nThe validator's hot tables: {tables}; best of {validator.REPEATS} runs each, taking turns.")
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_chat_validation.jsonl"
    if shared.exists():
        latency = validator.small_file_latency(shared)
        print(
            f"\n`finetune-bot validate` on a 36 KB file: {latency['validate_s']} s "
            f"(a bare `python -c pass`: {latency['bare_python_s']} s)"
        )


def figures_table(title: str, figures: dict[str, object]) -> None:
    print(f"\n## {title}\n")
    print("| figure | value |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value} |")


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("all", "validator"):
        sizes = tuple(int(size) for size in sys.argv[2:]) or validator.SIZES_MB
        validator_table(sizes)
    if which in ("all", "ticks"):
        figures_table("One tick with 1,000 active jobs (emulators on loopback, SQLite)", ticks.main())
    if which in ("all", "load"):
        figures_table("200 concurrent slash commands (HTTP mode, SQLite, loopback)", load.main())
    if which == "replicas":
        figures_table("compose.yaml's two replicas, run by hand on one PostgreSQL", replicas.main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
