"""The exceptions of cortex.llm: one class per cortex::Error code, all CortexError."""

from typing import Dict, Type


class CortexError(Exception):
    """An error from the Cortex library (a C++ ``cortex::Error``).

    Attributes:
        code: the stable machine-readable code, e.g. ``"not_found"``.
        message: what failed.
        hint: what the user can do about it (may be empty).
    """

    code: str = "internal"

    def __init__(self, message: str, code: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def __reduce__(self):  # keeps code and hint through pickle (multiprocessing)
        return (type(self), (self.message, self.code, self.hint))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, hint={self.hint!r})"


class InvalidArgumentError(CortexError, ValueError):
    """A parameter is out of range or malformed (code ``invalid_argument``); also a ValueError."""

    code = "invalid_argument"


class NotFoundError(CortexError, LookupError):
    """A model name or file does not exist (code ``not_found``); also a LookupError."""

    code = "not_found"


class InvalidModelError(CortexError):
    """The file is not a usable GGUF model (code ``invalid_model``)."""

    code = "invalid_model"


class UnsupportedModelError(CortexError):
    """A valid GGUF whose architecture this llama.cpp build cannot run (``unsupported_model``)."""

    code = "unsupported_model"


class LoadFailedError(CortexError):
    """libllama could not load the model or create its context (code ``load_failed``)."""

    code = "load_failed"


class PromptTooLongError(CortexError, ValueError):
    """The prompt does not fit the context window (code ``prompt_too_long``); also a ValueError."""

    code = "prompt_too_long"


class InvalidGrammarError(CortexError, ValueError):
    """The GBNF grammar does not parse (code ``invalid_grammar``); also a ValueError."""

    code = "invalid_grammar"


class InvalidSchemaError(CortexError, ValueError):
    """The JSON schema cannot be turned into a grammar (code ``invalid_schema``); also a ValueError."""

    code = "invalid_schema"


class TemplateFailedError(CortexError):
    """The chat template could not be applied to the messages (code ``template_failed``)."""

    code = "template_failed"


class DecodeFailedError(CortexError):
    """libllama failed while evaluating tokens (code ``decode_failed``)."""

    code = "decode_failed"


class NetworkError(CortexError):
    """A download or daemon connection failed (code ``network``)."""

    code = "network"


class ChecksumMismatchError(CortexError):
    """Bytes do not have the expected SHA-256 (code ``checksum_mismatch``)."""

    code = "checksum_mismatch"


class CancelledError(CortexError):
    """The operation was interrupted (code ``cancelled``)."""

    code = "cancelled"


class BusyError(CortexError):
    """Another process holds the lock (code ``busy``)."""

    code = "busy"


class IoError(CortexError):
    """An operating-system call failed, or the preload daemon went away (code ``io``)."""

    code = "io"


class InternalError(CortexError):
    """A bug in Cortex (code ``internal``): please report it."""

    code = "internal"


#: The exception class raised for each error code.
ERROR_CLASSES: Dict[str, Type[CortexError]] = {
    cls.code: cls
    for cls in (InvalidArgumentError, NotFoundError, InvalidModelError, UnsupportedModelError, LoadFailedError,
                PromptTooLongError, InvalidGrammarError, InvalidSchemaError, TemplateFailedError, DecodeFailedError,
                NetworkError, ChecksumMismatchError, CancelledError, BusyError, IoError, InternalError)
}


def _make_error(code: str, message: str, hint: str) -> CortexError:
    """Builds the exception for a cortex::Error (called by the native module)."""
    return ERROR_CLASSES.get(code, CortexError)(message, code, hint)
