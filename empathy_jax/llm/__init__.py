"""Responses from an external LLM behind an OpenAI-compatible HTTP API (`launch/test_llm.py`)."""
