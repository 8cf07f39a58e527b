"""Datasets: intake of shared files (intake), the streaming validator, token counting and cost estimates.

The validator's modules stay light (no Slack, no OpenAI SDK) so `finetune-bot validate` starts fast;
this file imports none of its submodules, so importing the validator never pulls intake in.
"""
