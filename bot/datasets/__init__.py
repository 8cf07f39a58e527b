"""Datasets: the streaming validator, token counting and cost estimates.

Imports here stay light (no Slack, no OpenAI SDK) so `finetune-bot validate` starts fast.
"""
