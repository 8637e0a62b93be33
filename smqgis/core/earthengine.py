"""Earth Engine access: the Cloud project, sign-in, initialisation, and errors a user can act on.

The first step of the flow when inputs come from Earth Engine (``ee_inputs`` builds the
requests, ``ee_fetch`` downloads them). Nothing here runs at import: ``earthengine-api`` is
imported inside the functions, sign-in happens only when :func:`sign_in` is called (a
Processing algorithm does), and no token is ever logged. Since 13 November 2024 every request
needs a Cloud project registered for Earth Engine; :func:`resolve_project` finds it in the
plugin's settings, the environment, or the Earth Engine command-line tool's credentials file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from .errors import EarthEngineError

log = logging.getLogger(__name__)

#: Environment variables that name the Cloud project, in the order they are read.
PROJECT_ENV_VARS = ("SMQGIS_EE_PROJECT", "EARTHENGINE_PROJECT")
#: Environment variable naming another Earth Engine endpoint (a proxy, or the local fake of the tests).
URL_ENV_VAR = "SMQGIS_EE_URL"
#: HTTP statuses worth another try: quota (429) and server errors.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

SIGN_IN_HELP = ("sign in to Earth Engine first: run the Processing algorithm 'Sign in to Earth Engine' "
                "(smqgis:sign_in_ee), or 'earthengine authenticate' in a terminal")
PROJECT_HELP = ("set a Google Cloud project registered for Earth Engine "
                "(https://code.earthengine.google.com/register): in the algorithm's 'Cloud project' parameter, "
                "the SMQGIS_EE_PROJECT environment variable, or 'earthengine set_project PROJECT'")


def credentials_path() -> str:
    """Where the Earth Engine command-line tool keeps its credentials (``~/.config/earthengine/credentials``)."""
    return os.path.expanduser(os.path.join("~", ".config", "earthengine", "credentials"))


def resolve_project(settings_project: str | None = None, *, environ: dict[str, str] | None = None,
                    credentials_file: str | None = None) -> tuple[str | None, str]:
    """The Cloud project to bill Earth Engine requests to, and where it was found.

    Parameters
    ----------
    settings_project : str, optional
        The project from the plugin's settings or an algorithm parameter; wins when given.
    environ : dict, optional
        Environment to read (default ``os.environ``): :data:`PROJECT_ENV_VARS` in order.
    credentials_file : str, optional
        The command-line tool's credentials JSON (default :func:`credentials_path`); its ``"project"`` entry.

    Returns
    -------
    (project or None, where)
        ``where`` is ``"settings"``, the environment variable's name, ``"credentials file"`` or ``"none"``.
    """
    if settings_project and settings_project.strip():
        return settings_project.strip(), "settings"
    env = os.environ if environ is None else environ
    for name in PROJECT_ENV_VARS:
        if env.get(name, "").strip():
            return env[name].strip(), name
    path = credentials_file or credentials_path()
    try:
        with open(path, encoding="utf-8") as fh:
            project = json.load(fh).get("project")
    except (OSError, ValueError):
        project = None
    if project:
        return str(project), "credentials file"
    return None, "none"


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind an Earth Engine exception, when the library kept it.

    ``ee.data`` raises ``EEException`` from inside its ``except HttpError`` block, so the
    original ``googleapiclient`` error is the exception's context.
    """
    seen = exc
    for _ in range(4):  # the chain is short: EEException <- HttpError
        status = getattr(getattr(seen, "resp", None), "status", None)
        if status is not None:
            return int(status)
        if getattr(seen, "status_code", None) is not None:
            return int(seen.status_code)  # type: ignore[attr-defined]
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    match = re.search(r"\b(429|50[0234])\b", str(exc))
    return int(match.group(1)) if match else None


def is_retryable(exc: BaseException) -> bool:
    """True for quota (429) and server (5xx) failures, and dropped connections."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    return http_status(exc) in RETRYABLE_STATUS or "too many requests" in text or "quota exceeded" in text


def translate(exc: BaseException, *, role: str | None = None) -> EarthEngineError:
    """An :class:`EarthEngineError` with advice, for an exception raised by earthengine-api."""
    if isinstance(exc, EarthEngineError):
        return exc
    text = str(exc)
    low = text.lower()
    status = http_status(exc)
    if "authenticate" in low or "credentials" in low or "not signed in" in low or status == 401:
        return EarthEngineError(f"Earth Engine: not signed in ({text.splitlines()[0]}); {SIGN_IN_HELP}",
                                reason="not_signed_in", role=role)
    if ("project" in low and ("not registered" in low or "not been used" in low or "no project" in low
                              or "required permission to use project" in low)) or status == 403:
        return EarthEngineError(f"Earth Engine refused the Cloud project ({text.splitlines()[0]}); {PROJECT_HELP}",
                                reason="project", parameter="project", role=role)
    if status == 429 or "too many requests" in low or "quota" in low:
        return EarthEngineError(
            f"Earth Engine quota exceeded ({text.splitlines()[0]}); wait a few minutes, use fewer parallel "
            "requests, or a smaller area", reason="quota", role=role)
    if "total request size" in low or "must be less than or equal to" in low or "too large" in low:
        return EarthEngineError(
            f"Earth Engine: request too large ({text.splitlines()[0]}); choose a smaller area or run qgis_process "
            "in batch over tiles", reason="too_large", parameter="extent", role=role)
    if status is not None and status >= 500:
        return EarthEngineError(f"Earth Engine server error {status} after retries ({text.splitlines()[0]}); "
                                "try again later (a rerun resumes from the cache)", reason="server", role=role)
    return EarthEngineError(f"Earth Engine: {text}", role=role)


def sign_in(auth_mode: str | None = None, force: bool = False) -> str:
    """Run earthengine-api's own sign-in flow (browser or gcloud) and return where the credentials are.

    Parameters
    ----------
    auth_mode : {"localhost", "notebook", "gcloud", None}
        Passed to ``ee.Authenticate``; None lets the library choose.
    force : bool
        Sign in again even when credentials exist.
    """
    import ee

    try:
        ee.Authenticate(auth_mode=auth_mode, force=force)
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds; all become advice
        raise EarthEngineError(f"Earth Engine sign-in failed: {exc}; run 'earthengine authenticate' in a terminal "
                               "and retry", reason="not_signed_in") from None
    path = credentials_path()
    log.info("Earth Engine credentials stored in %s", path)  # the path only: never the token
    return path


def initialise(project: str | None = None, *, url: str | None = None, credentials: Any = "persistent",
               environ: dict[str, str] | None = None) -> str:
    """Initialise earthengine-api for a Cloud project; return the project used.

    Parameters
    ----------
    project : str, optional
        The project from the plugin's settings or a parameter (see :func:`resolve_project`).
    url : str, optional
        Another endpoint (default: ``$SMQGIS_EE_URL`` or Google's). Requests to a loopback
        endpoint (the tests' fake) go without credentials.
    credentials : optional
        ``"persistent"`` (the stored sign-in) or credentials object.

    Raises
    ------
    EarthEngineError
        ``reason="project"`` without a project, ``"not_signed_in"`` without credentials, or as translated.
    """
    import ee

    env = os.environ if environ is None else environ
    project, where = resolve_project(project, environ=env)
    if not project:
        raise EarthEngineError(f"no Cloud project for Earth Engine; {PROJECT_HELP}", reason="project",
                               parameter="project")
    url = url or env.get(URL_ENV_VAR) or None
    if url and re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?(/|$)", url):
        credentials = None
    try:
        ee.Initialize(credentials=credentials, url=url, project=project)
    except Exception as exc:  # noqa: BLE001 - earthengine-api raises EEException and auth errors alike
        raise translate(exc) from None
    # smqgis retries itself (ee_fetch.with_retries: backoff with jitter, counted, cancellable)
    ee.data.setMaxRetries(0)
    log.info("Earth Engine initialised for project %s (from %s)", project, where)
    return project
