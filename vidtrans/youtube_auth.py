"""OAuth for the YouTube Data API: authorise once, then refresh headless.

* :func:`authorize` runs Google's installed-app flow (PKCE) and stores the
  authorised-user token (``Credentials.to_json``) in :func:`token_path`
  (``$VIDTRANS_YOUTUBE_TOKEN``, default ``~/.config/vidtrans/youtube_token.json``),
  written atomically with mode 0600.

  - On a machine with a browser (local Jupyter, a terminal) it uses
    ``InstalledAppFlow.run_local_server(port=0)``: a one-shot loopback server
    receives the redirect.
  - In Colab (or with ``console=True``) the browser is not on the machine that
    runs the code, and ``google.colab.auth`` cannot grant YouTube scopes; the
    out-of-band flow is gone and the device flow does not allow
    ``youtube.force-ssl``.  So the authorisation URL is printed, the browser's
    redirect to ``http://localhost:8085/?code=...`` fails to load, and the user
    pastes that address back; the *same* flow object finishes the exchange,
    so the PKCE verifier is kept.

* :func:`load_credentials` is what every upload uses: it never prompts.  It
  loads the token file, refreshes the access token when it has expired
  (against ``$VIDTRANS_OAUTH_TOKEN_URI`` when set, else the token URI saved
  with the token) and saves the new one.  A refresh token that Google refuses
  (``invalid_grant``) raises :class:`ReauthorizationRequiredError` at once,
  with what to run and why it happens (apps left in "Testing" publishing
  status get refresh tokens that expire after 7 days).

The scope is exactly :data:`SCOPE` (``youtube.force-ssl``), the only scope the
captions API accepts.  Token values and the client secret are never logged,
printed or put in exception messages.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._io import atomic_path
from .errors import AuthenticationError, ConfigurationError, MissingDependencyError, ServiceError
from .secrets import _check_private  # the same 0600 rule as the secrets file

log = logging.getLogger(__name__)

#: the only OAuth scope the captions API accepts (and the only one vidtrans asks for)
SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
SCOPES = (SCOPE,)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: redirect address for the paste-back (Colab/console) flow; nothing needs to listen there
CONSOLE_REDIRECT_URI = "http://localhost:8085/"

REAUTH_HINT = (
    "run `vidtrans auth youtube --client-secrets client_secret.json` (add --console where no browser can "
    "reach this machine, e.g. Colab) to authorise again. If your OAuth app's publishing status is "
    "'Testing', Google expires its refresh tokens after 7 days: publish the app ('In production') in the "
    "Google Cloud console's OAuth consent screen to keep them"
)


class ReauthorizationRequiredError(AuthenticationError):
    """No usable YouTube authorisation: missing token file, or Google refused the refresh token."""

    def __init__(self, message: str):
        super().__init__(message, engine="youtube")


class ClientSecretsError(ConfigurationError):
    """The OAuth client secrets file is missing or not a Desktop-app client."""


def _require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra="youtube", purpose="publishing to YouTube") from exc


def token_path() -> Path:
    """``$VIDTRANS_YOUTUBE_TOKEN`` or ``~/.config/vidtrans/youtube_token.json``."""
    env = os.environ.get("VIDTRANS_YOUTUBE_TOKEN")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base, "vidtrans", "youtube_token.json")


def token_uri_override() -> str | None:
    """``$VIDTRANS_OAUTH_TOKEN_URI``: the token endpoint to use instead of Google's."""
    return os.environ.get("VIDTRANS_OAUTH_TOKEN_URI") or None


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- token file
def save_credentials(credentials: Any, path: str | os.PathLike | None = None) -> Path:
    """Write *credentials* (``Credentials.to_json``) atomically with mode 0600; return the path."""
    p = Path(path) if path is not None else token_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:  # mkstemp creates the file 0600; chmod in case umask/FS differs
        os.chmod(tmp, 0o600)
        tmp.write_text(credentials.to_json(), encoding="utf-8")
    log.info("stored the YouTube authorisation in %s", p)
    return p


def _read_token(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise ReauthorizationRequiredError(f"no YouTube authorisation found at {p}: {REAUTH_HINT}")
    _check_private(p)
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReauthorizationRequiredError(
            f"the YouTube token file {p} is unreadable ({type(exc).__name__}): {REAUTH_HINT}"
        ) from None  # the content may hold secrets: never chain it
    if not isinstance(info, dict) or not info.get("refresh_token"):
        raise ReauthorizationRequiredError(f"the YouTube token file {p} holds no refresh token: {REAUTH_HINT}")
    return info


def load_credentials(path: str | os.PathLike | None = None, *, refresh: bool = True) -> Any:
    """Load the stored authorisation, refreshing (and re-saving) an expired access token.

    Never prompts.  Raises ReauthorizationRequiredError (no token, wrong
    scope, ``invalid_grant``), InsecureSecretsFileError (token file not
    0600) or ServiceError (token endpoint unreachable).
    """
    Credentials = _require("google.oauth2.credentials", "google-auth").Credentials
    p = Path(path) if path is not None else token_path()
    info = _read_token(p)
    granted = info.get("scopes") or []
    if isinstance(granted, str):
        granted = granted.split()
    if granted and SCOPE not in granted:
        raise ReauthorizationRequiredError(
            f"the YouTube token in {p} was granted {', '.join(granted)}, not {SCOPE}: {REAUTH_HINT}"
        )
    try:
        creds = Credentials.from_authorized_user_info(info, scopes=list(SCOPES))
    except ValueError as exc:
        raise ReauthorizationRequiredError(f"the YouTube token file {p} is incomplete ({exc}): {REAUTH_HINT}") from None
    # from_authorized_user_info always resets token_uri to Google's: put back the saved or configured one
    creds = creds.with_token_uri(token_uri_override() or info.get("token_uri") or GOOGLE_TOKEN_URI)
    if refresh and not creds.valid:
        refresh_credentials(creds)
        save_credentials(creds, p)
    return creds


def refresh_credentials(creds: Any) -> None:
    """Refresh the access token in place; map Google's refusals to specific errors."""
    exceptions = _require("google.auth.exceptions", "google-auth")
    transport = _require("google.auth.transport.requests", "google-auth")
    try:
        creds.refresh(transport.Request())
    except exceptions.RefreshError as exc:
        raise reauthorization_error(exc) from exc
    except exceptions.TransportError as exc:
        raise ServiceError(f"cannot reach the OAuth token endpoint to refresh the YouTube token: {exc}",
                           engine="youtube") from exc


def reauthorization_error(exc: BaseException) -> ReauthorizationRequiredError:
    """The error to raise for a refused refresh (``invalid_grant`` and friends)."""
    text = str(exc)
    if "invalid_grant" in text:
        why = "Google refused the stored refresh token (invalid_grant: expired or revoked)"
    elif "invalid_client" in text or "unauthorized_client" in text:
        why = "Google refused the OAuth client (invalid_client: the client was deleted or its secret reset)"
    else:
        why = "refreshing the YouTube token failed"
    return ReauthorizationRequiredError(f"{why}: {REAUTH_HINT}")


# --------------------------------------------------------------------------- authorisation
def load_client_config(client_secrets: str | os.PathLike) -> dict[str, Any]:
    """Read a Desktop-app ``client_secret.json``; ``$VIDTRANS_OAUTH_TOKEN_URI`` overrides its token URI."""
    p = Path(client_secrets).expanduser()
    if not p.is_file():
        raise ClientSecretsError(
            f"OAuth client secrets file not found: {p} (create a 'Desktop app' OAuth client in the Google "
            f"Cloud console, APIs & Services > Credentials, and download its JSON)"
        )
    try:
        config = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientSecretsError(f"{p} is not a client secrets JSON file ({type(exc).__name__})") from None
    kind = next((k for k in ("installed", "web") if isinstance(config, dict) and k in config), None)
    if kind is None:
        raise ClientSecretsError(f"{p} is not an OAuth client secrets file (no 'installed' section)")
    section = dict(config[kind])
    missing = [k for k in ("client_id", "client_secret", "auth_uri", "token_uri") if not section.get(k)]
    if missing:
        raise ClientSecretsError(f"{p} lacks {', '.join(missing)}")
    if token_uri_override():
        section["token_uri"] = token_uri_override()
    return {kind: section}


def _flow(client_secrets: str | os.PathLike):
    flow_mod = _require("google_auth_oauthlib.flow", "google-auth-oauthlib")
    return flow_mod.InstalledAppFlow.from_client_config(
        load_client_config(client_secrets), scopes=list(SCOPES), autogenerate_code_verifier=True
    )


def _fetch_token(flow: Any, **kwargs: Any) -> None:
    oauth2_errors = _require("oauthlib.oauth2.rfc6749.errors", "oauthlib")
    try:
        flow.fetch_token(**kwargs)
    except Warning as exc:  # oauthlib raises "Scope has changed" when the user unticked the YouTube scope
        raise _scope_error() from exc
    except oauth2_errors.OAuth2Error as exc:
        # the description is Google's, e.g. "invalid_grant: Bad Request"; it never holds the code or secret
        raise AuthenticationError(f"Google refused the authorisation ({exc.error}): {REAUTH_HINT}",
                                  engine="youtube") from exc


def _scope_error() -> AuthenticationError:
    return AuthenticationError(f"the authorisation did not grant {SCOPE}: authorise again and tick 'See, edit, and "
                               "permanently delete your YouTube videos, ratings, comments and captions' on Google's "
                               "consent screen", engine="youtube")


def console_flow(flow: Any, *, input_fn: Callable[[str], str] | None = None,
                 print_fn: Callable[[str], None] | None = None) -> Any:
    """Paste-back flow for Colab/remote machines: print the URL, read the redirected address back."""
    input_fn = input_fn or input
    print_fn = print_fn or print
    flow.redirect_uri = CONSOLE_REDIRECT_URI
    auth_url, state = flow.authorization_url(access_type="offline", prompt="consent")
    print_fn(
        "Open this address in your browser and allow access to your YouTube account:\n"
        f"{auth_url}\n"
        "Your browser then tries to open a page on http://localhost:8085/ and fails to load it: that is "
        "expected. Copy the whole address from the browser's address bar and paste it here."
    )
    answer = (input_fn("Address after authorising: ") or "").strip()
    if not answer:
        raise AuthenticationError("no address pasted: authorisation cancelled", engine="youtube")
    if "://" not in answer and "code=" not in answer:  # the bare code
        _fetch_token(flow, code=answer)
        return flow.credentials
    query = parse_qs(urlsplit(answer).query)
    if "error" in query:
        raise AuthenticationError(f"authorisation was not granted ({query['error'][0]})", engine="youtube")
    if "code" not in query:
        raise AuthenticationError(
            "the pasted address has no 'code=' parameter: paste the whole address the browser shows after "
            "you allowed access", engine="youtube")
    if query.get("state", [state])[0] != state:
        raise AuthenticationError("the pasted address belongs to another authorisation attempt (state differs); "
                                  "start again", engine="youtube")
    # oauthlib insists on https for the response it parses; the redirect itself is plain loopback http
    _fetch_token(flow, authorization_response=answer.replace("http://", "https://", 1))
    return flow.credentials


def authorize(
    client_secrets: str | os.PathLike,
    *,
    console: bool | None = None,
    token_file: str | os.PathLike | None = None,
    browser: str | None = None,
    open_browser: bool = True,
    timeout: float | None = 300,
    input_fn: Callable[[str], str] | None = None,
    print_fn: Callable[[str], None] | None = None,
) -> Path:
    """Run the OAuth flow that suits this environment; store the token (0600); return its path.

    *console* None picks the paste-back flow in Colab and the loopback
    browser flow elsewhere.  *browser* names a ``webbrowser`` browser for the
    loopback flow (default: the system's).  The token must include
    :data:`SCOPE`.
    """
    flow = _flow(client_secrets)
    if console is None:
        console = in_colab()
    if not console and open_browser:
        import webbrowser

        try:
            webbrowser.get(browser)
        except webbrowser.Error:
            log.warning("no web browser found on this machine: using the paste-back flow instead")
            console = True
    if console:
        creds = console_flow(flow, input_fn=input_fn, print_fn=print_fn)
    else:
        flow_mod = _require("google_auth_oauthlib.flow", "google-auth-oauthlib")
        oauth2_errors = _require("oauthlib.oauth2.rfc6749.errors", "oauthlib")
        try:
            creds = flow.run_local_server(
                host="localhost", port=0, open_browser=open_browser, browser=browser,
                authorization_prompt_message="Opening your browser to authorise vidtrans; if it does not open, "
                                             "visit:\n{url}",
                success_message="vidtrans is authorised to manage your YouTube captions. You may close this tab.",
                timeout_seconds=timeout, access_type="offline", prompt="consent",
            )
        except flow_mod.WSGITimeoutError as exc:
            raise AuthenticationError(f"no answer from the browser within {timeout} s: authorisation cancelled "
                                      "(use --console where no browser can reach this machine)",
                                      engine="youtube") from exc
        except oauth2_errors.OAuth2Error as exc:
            raise AuthenticationError(f"Google refused the authorisation ({exc.error})", engine="youtube") from exc
        except Warning as exc:  # "Scope has changed": the YouTube scope was not granted
            raise _scope_error() from exc
    granted = creds.granted_scopes or creds.scopes or ()
    granted = set(granted.split() if isinstance(granted, str) else granted)
    if SCOPE not in granted:
        raise _scope_error()
    if not creds.refresh_token:
        raise AuthenticationError("Google returned no refresh token; revoke vidtrans's access in your Google "
                                  "account settings and authorise again", engine="youtube")
    return save_credentials(creds, token_file)
