"""Proposing with LLMs: prompts, answers, the client and its two transports (httpx for OpenAI-compatible
servers, litellm for hosted providers), the model ensemble, usage, replay."""
