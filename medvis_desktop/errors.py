"""The package's own exceptions: each carries a message a radiographer can act on."""


class MedvisError(Exception):
    """Base of every error medvis reports to the user instead of a traceback."""


class LoadError(MedvisError):
    """A study could not be opened (missing, empty, corrupt, unsupported)."""
