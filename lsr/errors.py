"""Errors whose message is meant for the person who caused them (bad files, arguments or requests).

The CLI prints them as one line and the API answers them as 4xx; anything else is a bug.
"""


class LsrError(Exception):
    """Base class: the message says what is wrong and, where possible, how to fix it."""


class DatasetError(LsrError):
    """A dataset folder or file is missing or malformed."""


class EncoderError(LsrError):
    """An encoder name cannot be resolved or loaded."""


class IndexFolderError(LsrError):
    """An index folder is missing, incomplete, corrupt or of an unsupported format."""


class EncoderMismatchError(LsrError):
    """An index is being searched with another encoder than the one that built it."""
