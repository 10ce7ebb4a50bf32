"""Which errors mean "tracking store unreachable": only real connection / timeout failures. A bug or
bad data in the caller (matplotlib's TypeError on a title it cannot render) is raised, never spooled."""

from __future__ import annotations

import errno

import pytest

from evalkit.tracking.redact import is_store_error, is_unreachable, store_failure


def _raised_from(outer: type[Exception], inner: Exception) -> Exception:
    """``outer`` raised while handling ``inner`` (implicit chaining, as MLflow's REST client does)."""
    try:
        try:
            raise inner
        except type(inner):
            raise outer("API request failed")
    except outer as e:
        return e


def test_only_connection_and_timeout_errors_read_unreachable():
    from mlflow.exceptions import MlflowException

    assert is_unreachable(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert is_unreachable(TimeoutError("timed out"))
    assert is_unreachable(_raised_from(MlflowException, ConnectionResetError("reset by peer")))
    type_error = TypeError("set_text(): incompatible function arguments ... timeout")
    assert not is_unreachable(type_error) and not is_store_error(type_error)
    assert "unreachable" not in store_failure("tracking store x", type_error)
    disk = OSError(errno.ENOSPC, "No space left on device")
    assert is_store_error(disk) and store_failure("tracking store x", disk) == "tracking store x: disk full"
    assert store_failure("tracking store x", ConnectionRefusedError("Connection refused")) == \
        "tracking store x unreachable: connection refused"


def test_an_error_that_is_not_the_stores_is_raised_and_the_run_stays_online(store):
    import mlflow

    from evalkit.tracking import RunLogger

    journaled = []

    def render():
        raise TypeError("set_text(): incompatible function arguments")

    with RunLogger(store, "not-the-store") as run:
        with pytest.raises(TypeError, match="set_text"):
            run.do(render, lambda: journaled.append(1))
        assert not run.offline and journaled == []
        run.log_metrics({"test/micro_f2": 0.5})
        run_id = run.run_id
    got = mlflow.MlflowClient(store).get_run(run_id)
    assert got.info.status == "FINISHED" and got.data.metrics["test/micro_f2"] == 0.5
