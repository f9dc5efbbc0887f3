"""The one exception type users see: a one-line message naming the file, line and reason."""


class AudioseqError(Exception):
    """A problem with the user's input or configuration (not a bug in audioseq)."""


class DataError(AudioseqError):
    """A sample, file or manifest that cannot be used.

    ``reason`` is a short category (``missing``, ``corrupt``, ...) under which
    ``data.on_error=skip`` counts the samples it drops.
    """

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(AudioseqError):
    """A configuration value that is missing or out of range."""


def one_line(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it.

    PyTorch re-raises worker exceptions with the worker's whole traceback as the message;
    the original message is its last line, after ``module.ClassName: ``.
    """
    text = str(exc).strip()
    if "Traceback" in text:
        last = text.splitlines()[-1]
        _, sep, rest = last.partition("Error: ")
        text = rest if sep else last
    return text.replace("\n", " ")
