"""API keys and tokens: looked up, never printed.

:func:`get_secret` looks a secret up, in order, in

1. the process environment (``name``, then each alias),
2. Colab's ``google.colab.userdata`` (the notebook's "Secrets" panel) when it
   is importable,
3. the system keyring (``keyring.get_password("vidtrans", name)``) when the
   ``keyring`` package is installed,
4. a JSON token file, ``$VIDTRANS_SECRETS_FILE`` or
   ``~/.config/vidtrans/secrets.json`` (``{"ASSEMBLYAI_API_KEY": "..."}``),
   which must be readable by its owner only (mode 0600); a looser file is
   refused rather than read.

Secrets are never notebook parameters and never go into log records or
exception messages: a missing secret raises :class:`MissingSecretError`, which
names the *variable to set*, never a value.  :func:`redact` and
:class:`SecretFilter` mask secret values in text and log records.

The upload stage reuses :func:`store_secret` / :func:`secrets_file` for OAuth
tokens (written atomically with mode 0600).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ._io import atomic_path
from .errors import AuthenticationError, ConfigurationError

log = logging.getLogger(__name__)

#: keyring service name under which vidtrans stores its secrets
KEYRING_SERVICE = "vidtrans"

#: environment variables vidtrans reads secrets from (masked by :func:`redact`)
KNOWN_SECRET_NAMES: tuple[str, ...] = (
    "ASSEMBLYAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_API_KEY",
    "HF_TOKEN",
    "YOUTUBE_CLIENT_SECRET",
)

#: replacement text for masked secrets
MASK = "***"

#: values shorter than this are never masked (they would mangle ordinary text)
_MIN_SECRET_LEN = 6


class MissingSecretError(AuthenticationError):
    """A required secret is not configured anywhere vidtrans looks."""

    def __init__(self, name: str, aliases: Iterable[str] = (), purpose: str = ""):
        names = [name, *aliases]
        what = f" (needed for {purpose})" if purpose else ""
        either = " or ".join(names)
        super().__init__(
            f"{name} is not set{what}: set the environment variable {either}, add it to Colab's "
            f"Secrets panel, store it with `keyring set {KEYRING_SERVICE} {name}`, or put it in "
            f"{secrets_file()} (mode 0600)"
        )
        self.name = name


class InsecureSecretsFileError(ConfigurationError):
    """The token file is readable or writable by other users."""


def secrets_file() -> Path:
    """Path of the JSON token file: ``$VIDTRANS_SECRETS_FILE`` or ``~/.config/vidtrans/secrets.json``."""
    env = os.environ.get("VIDTRANS_SECRETS_FILE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base, "vidtrans", "secrets.json")


def _check_private(path: Path) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureSecretsFileError(
            f"refusing to read secrets from {path}: its permissions are {mode:04o}, other users can "
            f"access it; run `chmod 600 {path}`"
        )


def read_secrets_file(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Return the token file's name -> value mapping ({} when it does not exist).

    Raises InsecureSecretsFileError when the file is not private (0600) and
    ConfigurationError when it is not a JSON object of strings.
    """
    p = Path(path) if path is not None else secrets_file()
    if not p.exists():
        return {}
    _check_private(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        # the message names the file and the position, never the content
        raise ConfigurationError(f"secrets file {p} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigurationError(f"secrets file {p} must hold one JSON object of name -> string")
    return data


def store_secret(name: str, value: str, path: str | os.PathLike | None = None) -> Path:
    """Add or replace *name* in the token file, written atomically with mode 0600."""
    p = Path(path) if path is not None else secrets_file()
    data = read_secrets_file(p)
    data[name] = value
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:  # mkstemp creates the file 0600
        os.chmod(tmp, 0o600)
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    log.info("stored %s in %s", name, p)
    return p


def _from_colab(name: str) -> str | None:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception as exc:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        log.debug("%s not available from Colab secrets (%s)", name, type(exc).__name__)
        return None
    return value or None


def _from_keyring(name: str) -> str | None:
    try:
        import keyring  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, name) or None
    except Exception as exc:  # keyring.errors.KeyringError, backend failures
        log.debug("keyring lookup of %s failed (%s)", name, type(exc).__name__)
        return None


def find_secret(name: str, *, aliases: Iterable[str] = ()) -> tuple[str, str] | None:
    """Return ``(value, where)`` for the first source that has *name* (or an alias), else None.

    *where* is a description such as ``"environment variable GEMINI_API_KEY"``
    (safe to log; the value is not).
    """
    names = [name, *aliases]
    for n in names:
        value = os.environ.get(n, "").strip()
        if value:
            return value, f"environment variable {n}"
    for n in names:
        value = _from_colab(n)
        if value:
            return value.strip(), f"Colab secret {n}"
    for n in names:
        value = _from_keyring(n)
        if value:
            return value.strip(), f"keyring {KEYRING_SERVICE}/{n}"
    data = read_secrets_file()
    for n in names:
        value = (data.get(n) or "").strip()
        if value:
            return value, f"secrets file {secrets_file()} ({n})"
    return None


def get_secret(name: str, *, aliases: Iterable[str] = (), required: bool = True, purpose: str = "") -> str | None:
    """Return the secret *name* (or one of *aliases*) from the first source that has it.

    Raises MissingSecretError (an AuthenticationError naming what to set) when
    it is nowhere and *required*; returns None otherwise.
    """
    aliases = tuple(aliases)
    found = find_secret(name, aliases=aliases)
    if found is None:
        if required:
            raise MissingSecretError(name, aliases, purpose)
        return None
    value, where = found
    log.debug("using %s from %s", name, where)
    return value


def has_secret(name: str, *, aliases: Iterable[str] = ()) -> bool:
    """True when :func:`get_secret` would find *name*; an insecure token file counts as absent."""
    try:
        return find_secret(name, aliases=aliases) is not None
    except ConfigurationError:
        return False


def _known_values(extra: Iterable[str] = ()) -> list[str]:
    values = {os.environ.get(n, "").strip() for n in KNOWN_SECRET_NAMES}
    values.update(v.strip() for v in extra if v)
    # longest first, so a secret that contains another is masked whole
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret value in *text* with ``***``.

    Known values: those of :data:`KNOWN_SECRET_NAMES` in the environment plus
    *secrets* (values obtained elsewhere, e.g. from the keyring).
    """
    if not text:
        return text
    for value in _known_values(secrets):
        if value in text:
            text = text.replace(value, MASK)
    return text


class SecretFilter(logging.Filter):
    """Logging filter that masks secret values in records (message and arguments).

    Attach it to handlers (``handler.addFilter(SecretFilter())``): filters on a
    logger do not see records propagated from child loggers.  Values in the
    environment under :data:`KNOWN_SECRET_NAMES` are masked automatically;
    pass others (or call :meth:`add`) for secrets obtained from Colab, the
    keyring or the token file.
    """

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self._secrets: set[str] = {s for s in secrets if s}

    def add(self, secret: str) -> None:
        if secret:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        values = _known_values(self._secrets)
        if not values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        masked = message
        for v in values:
            masked = masked.replace(v, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        return True


def install_secret_filter(logger: logging.Logger | None = None, secrets: Iterable[str] = ()) -> SecretFilter:
    """Add one :class:`SecretFilter` to every handler of *logger* (default: the root logger)."""
    logger = logger or logging.getLogger()
    flt = SecretFilter(secrets)
    for handler in logger.handlers:
        handler.addFilter(flt)
    return flt
