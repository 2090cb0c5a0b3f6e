"""Proposing with LLMs: prompts, answers, the litellm client, the model ensemble, usage, replay."""
