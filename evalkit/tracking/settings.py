""":class:`TrackingSettings`: where runs are tracked and how long to wait for that store, as one value.

The command line and the Python API build it from a config (``tracking_uri``, ``tracking_timeout``)
and hand it to the tracking package explicitly (:class:`~evalkit.tracking.RunLogger`, the probes);
no evalkit setting travels through environment variables. MLflow's own HTTP client reads its limits
only from ``MLFLOW_HTTP_REQUEST_*``: :func:`evalkit.tracking.store.configure_http` is the one adapter
that sets them, from the timeout given here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.config import MAX_TRACKING_TIMEOUT, TRACKING_TIMEOUT
from evalkit.errors import InputError

#: seconds to wait for the tracking store unless told otherwise (:data:`evalkit.config.TRACKING_TIMEOUT`)
DEFAULT_TIMEOUT = TRACKING_TIMEOUT


@dataclass(frozen=True)
class TrackingSettings:
    """A tracking store and the time allowed to reach it.

    Attributes:
        uri: a resolved tracking URI (:func:`~evalkit.tracking.resolve_tracking_uri`).
        timeout: seconds (finite float in (0, 3600]) to wait for the store before failing with exit 3.
    Raises:
        InputError: ``--tracking-timeout: ...`` for a timeout outside (0, 3600] or not finite.
    """

    uri: str
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                or not 0 < t <= MAX_TRACKING_TIMEOUT:
            raise InputError(f"--tracking-timeout: expected seconds in (0, {MAX_TRACKING_TIMEOUT:g}], got {t!r}")

    @classmethod
    def resolve(cls, uri: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> "TrackingSettings":
        """Settings for ``uri`` as the user gave it (``--tracking-uri``, or None for
        ``$MLFLOW_TRACKING_URI`` / the local default), resolved without side effects.

        Raises:
            InputError: a malformed URI or timeout.
        """
        from evalkit.tracking.store import resolve_tracking_uri

        return cls(resolve_tracking_uri(uri), timeout)

    @classmethod
    def of(cls, config) -> "TrackingSettings":
        """The settings of a :class:`~evalkit.config.RunConfig` or
        :class:`~evalkit.config.EvaluateJobConfig` (``tracking_uri``, ``tracking_timeout``), resolved."""
        return cls.resolve(config.tracking_uri, config.tracking_timeout)
