"""Typed errors raised inside phototagger; the CLI turns each into a one-line message."""


class PhototaggerError(Exception):
    """Base of every error phototagger raises on purpose."""


class ConfigError(PhototaggerError):
    """A usage or configuration problem: the CLI exits with status 2."""


class ModelFormatError(ConfigError):
    """A file that is not a valid phototagger model."""


class IndexLockedError(ConfigError):
    """Another scan holds the index lock."""


class ImageError(PhototaggerError):
    """A file that cannot be decoded as an image; ``str()`` is the reason kept in the index."""


class TagWriteError(PhototaggerError):
    """A metadata write that was refused or failed verification; the original is untouched."""


class BusyError(PhototaggerError):
    """Work refused for now, not for good: every slot for it stayed taken (the app's 503)."""


#: How much of a person's input an error message repeats: enough to recognise it by.
ECHOED_CHARACTERS = 80


def cut(text: str, limit: int = ECHOED_CHARACTERS) -> str:
    """``text`` as an error message may repeat it: a name of 5 MB is not sent back whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
