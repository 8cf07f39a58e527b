"""The shared Block Kit pieces keep to Slack's limits whatever they are given, and lose no text they split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot import slack_blocks
from bot.mrkdwn import escape
from sandbox.slack.simulation import check_block

texts = st.text(alphabet=st.sampled_from("ab <>&\n`*é"), max_size=9000)


@given(texts)
def test_a_section_a_context_and_fields_stay_under_slacks_limits(text: str) -> None:
    escaped = escape(text)
    for block in (
        slack_blocks.section(escaped),
        slack_blocks.context(escaped),
        slack_blocks.fields_section([escaped] * 12),
        slack_blocks.header(text),
    ):
        check_block(block, pointer="/blocks/0")
    assert len(slack_blocks.fields_section([escaped] * 12)["fields"]) == 10


@given(texts)
def test_a_cut_never_splits_an_escape(text: str) -> None:
    escaped = escape(text)
    cut = slack_blocks.shorten(escaped, 300)
    assert len(cut) <= 300
    body = cut.removesuffix("…")
    assert escaped.startswith(body)
    tail = body[body.rfind("&") :] if "&" in body else ""
    assert not tail or ";" in tail, "an entity such as &lt; is kept whole or left out"


@given(texts, st.integers(min_value=8, max_value=3000))
def test_split_text_gives_pieces_slack_takes_and_loses_nothing(text: str, limit: int) -> None:
    escaped = escape(text)
    pieces = slack_blocks.split_text(escaped, limit)
    assert all(len(piece) <= limit for piece in pieces)
    assert "".join(pieces).replace("\n", "") == escaped.replace("\n", "")


def test_a_confirm_dialog_quoting_a_long_name_is_cut_to_300() -> None:
    dialog = slack_blocks.confirm_dialog(
        title="Delete this model?", text=f"`{escape('<' * 400)}` goes for good.", yes="Delete", no="Keep it"
    )
    button = slack_blocks.button("🗑 Delete model", "model_delete", "7", style="danger")
    button["confirm"] = dialog
    check_block({"type": "actions", "elements": [button]}, pointer="/blocks/0")
    assert len(dialog["text"]["text"]) <= slack_blocks.CONFIRM_TEXT_LIMIT and dialog["text"]["text"].endswith("…")


def test_options_and_inputs_keep_to_their_limits() -> None:
    options = [slack_blocks.option("m" * 200, f"v{n}") for n in range(3)]
    picker = slack_blocks.select_input("model", "Model", action_id="model", options=options, selected="v1")
    check_block(picker, pointer="/blocks/0")
    assert picker["element"]["initial_option"]["value"] == "v1"
    assert all(len(o["text"]["text"]) == 75 for o in options)
    field = slack_blocks.text_input("suffix", "Suffix", initial="", hint="h" * 5000, max_length=18)
    check_block(field, pointer="/blocks/0")


def test_money_reads_as_people_write_it() -> None:
    assert slack_blocks.money(None) == "unknown"
    assert slack_blocks.money(0.004) == "under $0.01"
    assert slack_blocks.money(1234.5) == "$1,234.50"
    assert slack_blocks.precise_money(0.0041) == "$0.0041"
    assert slack_blocks.precise_money(0) == "$0.00"
