"""Cortex: the native, local-LLM layer of an AI-first Linux distribution.

The Python API lives in :mod:`cortex.llm` (models, generation, streaming).
"""

__all__ = ["llm"]
