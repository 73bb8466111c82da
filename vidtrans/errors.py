"""Exception hierarchy for vidtrans.

Every error a user can cause (bad input, missing key, quota, network) is a
subclass of :class:`VidtransError` with a one-line, specific message.  The CLI
prints ``str(exc)`` and exits non-zero without a traceback for these; anything
else is a bug and keeps its traceback.  Stage modules define narrower
subclasses next to the code that raises them and always raise ``from`` the
underlying cause.
"""

from __future__ import annotations


class VidtransError(Exception):
    """Base class for errors a user can act on."""

    #: process exit code the CLI uses for this class of error
    exit_code = 1


class MissingDependencyError(VidtransError, ImportError):
    """An optional dependency is not installed; the message says what to install."""

    exit_code = 3

    def __init__(self, package: str, extra: str | None = None, purpose: str = ""):
        hint = f"pip install 'vidtrans[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{what}; install it with: {hint}")
        self.package = package


# -- input media -------------------------------------------------------------
class MediaError(VidtransError):
    """Problem with an input media file."""

    exit_code = 2


class MediaNotFoundError(MediaError, FileNotFoundError):
    pass


class NoAudioStreamError(MediaError):
    pass


class CorruptMediaError(MediaError):
    pass


class EmptyAudioError(MediaError):
    pass


# -- models / engines ----------------------------------------------------------
class ModelError(VidtransError):
    """A model could not be found, verified or loaded."""

    exit_code = 4


class EngineError(VidtransError):
    """A transcription engine failed."""

    exit_code = 5

    def __init__(self, message: str, engine: str | None = None):
        super().__init__(message)
        self.engine = engine


class AuthenticationError(EngineError):
    """Credentials are missing, wrong or lack permission."""


class QuotaExceededError(EngineError):
    """The service refused because of rate limits or an exhausted quota."""


class ServiceError(EngineError):
    """A remote service failed or returned something unusable."""


class ConfigurationError(VidtransError):
    """Options that cannot work together, or an unknown name."""

    exit_code = 2
