"""Credential redaction and one-line error reasons (shared by tracking and model loading).

Nothing here imports mlflow.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

_CRED_IN_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s:]+(?::[^/@\s]*)?@")
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCESS_KEY", "DATABRICKS_TOKEN")

_REASONS = (
    (("database or disk is full", "no space left on device", "errno 28]"), "disk full"),
    (("attempt to write a readonly database", "read-only file system", "errno 30]"), "read-only file system"),
    (("connection refused", "newconnectionerror", "failed to establish a new connection"), "connection refused"),
    (("name or service not known", "nodename nor servname", "temporary failure in name resolution"), "unknown host"),
    (("timed out", "timeout"), "timed out"),
    (("remotedisconnected", "connection aborted", "connection reset"), "connection lost"),
)


def redact_uri(uri: str) -> str:
    """``https://user:pass@host/x`` -> ``https://***@host/x``: credentials never reach logs or params.

    Args:
        uri: any URI (str). Returns it unchanged when it holds no credentials. Never raises.
    """
    parts = urlsplit(uri)
    if parts.username or parts.password:
        netloc = "***@" + parts.netloc.rsplit("@", 1)[1]
        return parts._replace(netloc=netloc).geturl()
    return uri


def encodable(text: str) -> str:
    """``text`` with file-name surrogates (undecodable bytes, ``"\\udcff"``) and lone surrogates as U+FFFD:
    valid UTF-8 for a store, a plot or a console. Never raises."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte explains
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def redact_text(text: str) -> str:
    """Credentials removed from any text: ``scheme://user:pass@`` -> ``scheme://***@`` and the values
    of credential environment variables (:data:`SECRET_ENV`, at least 4 characters) -> ``***``.

    Args:
        text: any text (converted with ``str``). Never raises. A file name's undecodable bytes
            (surrogates such as ``"\\udcff"``) become U+FFFD, so the store can encode the result.
    """
    text = _CRED_IN_URI.sub(r"\g<scheme>***@", encodable(str(text)))
    for name in SECRET_ENV:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), credentials redacted,
    at most ``limit`` characters. Never raises."""
    lines = str(e).strip().splitlines()
    return redact_text(lines[0] if lines else type(e).__name__)[:limit]


def store_reason(e: BaseException) -> str:
    """A short, credential-free reason for a tracking-store error: ``connection refused``,
    ``unknown host``, ``timed out``, ``connection lost``, ``disk full``, ``read-only file system``, else the message's first line (300 chars)."""
    low = str(e).lower()
    for needles, reason in _REASONS:
        if any(n in low for n in needles):
            return reason
    return first_line(e, 300)


#: modules whose exceptions come from talking to a tracking store (anything else is a bug or bad data
#: in the caller, e.g. matplotlib's TypeError while rendering a figure, and must not be spooled)
_STORE_MODULES = ("mlflow", "sqlalchemy", "sqlite3", "requests", "urllib3", "http.client", "socket", "alembic")
_CONNECTION_REASONS = ("connection refused", "unknown host", "timed out", "connection lost")


def _chain(e: BaseException):
    """``e`` and the exceptions it was raised from or while handling (at most 20)."""
    seen: list[BaseException] = []
    while e is not None and len(seen) < 20 and all(e is not s for s in seen):
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def is_store_error(e: BaseException) -> bool:
    """True when ``e`` (or what it was raised from) comes from the store layer: an ``OSError``
    (connections, sockets, files) or an exception of MLflow, SQLAlchemy, sqlite3, requests, urllib3."""
    return any(isinstance(x, OSError) or type(x).__module__.split(".")[0] in _STORE_MODULES
               or type(x).__module__ == "http.client" for x in _chain(e))


def is_unreachable(e: BaseException) -> bool:
    """True only for a real connection or timeout failure: a ``ConnectionError`` / ``TimeoutError`` /
    ``socket.gaierror`` in the chain, or a store-layer error whose reason (:func:`store_reason`) is
    ``connection refused``, ``unknown host``, ``timed out`` or ``connection lost``."""
    import socket

    if any(isinstance(x, (ConnectionError, TimeoutError, socket.gaierror)) for x in _chain(e)):
        return True
    return is_store_error(e) and store_reason(e) in _CONNECTION_REASONS


def store_failure(where: str, e: BaseException) -> str:
    """``"<where> unreachable: <reason>"`` for a connection / timeout failure, else ``"<where>: <reason>"``
    (the store answered, e.g. disk full, or failed otherwise): only real connection errors say unreachable."""
    return f"{where}{' unreachable:' if is_unreachable(e) else ':'} {store_reason(e)}"
