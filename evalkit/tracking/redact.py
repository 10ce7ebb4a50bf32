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


def redact_text(text: str) -> str:
    """Credentials removed from any text: ``scheme://user:pass@`` -> ``scheme://***@`` and the values
    of credential environment variables (:data:`SECRET_ENV`, at least 4 characters) -> ``***``.

    Args:
        text: any text (converted with ``str``). Never raises.
    """
    text = _CRED_IN_URI.sub(r"\g<scheme>***@", str(text))
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
