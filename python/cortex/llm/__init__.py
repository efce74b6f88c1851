"""cortex.llm: local text generation over libllama, the Python face of Cortex's C++ API.

    from cortex.llm import ModelManager, GenerationConfig
    model = ModelManager().load_model("qwen2.5-7b")
    result = model.chat([{"role": "user", "content": "Install docker"}],
                        config=GenerationConfig(max_tokens=512, temperature=0.7))
    for piece in model.chat([{"role": "user", "content": "Hi"}], stream=True):
        print(piece, end="", flush=True)

Models load once per ModelManager and run in this process, or on the preload daemon
(cortex-preload) when it serves the model. Every error is a CortexError with .code and .hint.
"""

from ._errors import (
    BusyError,
    CancelledError,
    ChecksumMismatchError,
    CortexError,
    DecodeFailedError,
    InternalError,
    InvalidArgumentError,
    InvalidGrammarError,
    InvalidModelError,
    InvalidSchemaError,
    IoError,
    LoadFailedError,
    NetworkError,
    NotFoundError,
    PromptTooLongError,
    TemplateFailedError,
    UnsupportedModelError,
)
from ._native import (
    GenerationConfig,
    Model,
    ModelConfig,
    ModelManager,
    Result,
    Stream,
    cortex_home,
    default_model_name,
    quick_chat,
    quick_complete,
    set_log_level,
)

#: The values of Result.finish_reason.
FINISH_REASONS = ("stop", "length", "cancelled")

__all__ = [
    "BusyError",
    "CancelledError",
    "ChecksumMismatchError",
    "CortexError",
    "DecodeFailedError",
    "FINISH_REASONS",
    "GenerationConfig",
    "InternalError",
    "InvalidArgumentError",
    "InvalidGrammarError",
    "InvalidModelError",
    "InvalidSchemaError",
    "IoError",
    "LoadFailedError",
    "Model",
    "ModelConfig",
    "ModelManager",
    "NetworkError",
    "NotFoundError",
    "PromptTooLongError",
    "Result",
    "Stream",
    "TemplateFailedError",
    "UnsupportedModelError",
    "cortex_home",
    "default_model_name",
    "quick_chat",
    "quick_complete",
    "set_log_level",
]
