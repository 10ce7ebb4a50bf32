"""Tracking settings: one store URI and timeout per command, passed explicitly to the tracking package."""

from __future__ import annotations

import socket

import pytest

from evalkit.config import TRACKING_TIMEOUT, EvaluateJobConfig, RunConfig
from evalkit.errors import InputError
from evalkit.tracking import RunLogger, TrackingSettings


def _record_run_logger_timeouts(monkeypatch) -> list[float]:
    """Every RunLogger built from now on appends its timeout here."""
    seen: list[float] = []
    init = RunLogger.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append(self.timeout)

    monkeypatch.setattr(RunLogger, "__init__", spy)
    return seen


def test_run_tracking_timeout_bounds_a_server_that_never_answers(store, cli, monkeypatch):
    seen = _record_run_logger_timeouts(monkeypatch)
    with socket.socket() as srv:  # the kernel accepts connections, nothing ever answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        uri = f"http://127.0.0.1:{srv.getsockname()[1]}"
        res = cli("run", "--epochs", "1", "--hidden", "8", "--folds", "1", "--no-log-model", "--tracking-uri", uri,
                  "--tracking-timeout", "2")
    assert res.exit_code == 3, res.output
    assert f"tracking store {uri} unreachable: timed out" in res.output, res.output
    assert "no answer within --tracking-timeout 2 s" in res.output and "nothing was run" in res.output
    assert seen == [2.0]  # the flag's value, not the default, reached the run's logger
    assert "best epoch" not in res.output  # failed before training


def test_evaluate_hands_its_timeout_to_the_run_logger(store, cli, tmp_path, monkeypatch):
    from test_gates import write_predictions

    seen = _record_run_logger_timeouts(monkeypatch)
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--tracking-timeout", "7", "--no-per-class")
    assert res.exit_code == 0, res.output
    assert seen == [7.0]


def test_tracking_timeout_default_is_the_one_constant():
    from evalkit.cli import app
    from evalkit.tracking import DEFAULT_TIMEOUT

    assert RunConfig().tracking_timeout == EvaluateJobConfig().tracking_timeout == TRACKING_TIMEOUT == 10.0
    assert DEFAULT_TIMEOUT == TrackingSettings("sqlite:///x.db").timeout == TRACKING_TIMEOUT
    import typer.main

    command = typer.main.get_command(app)
    defaults = {}
    for path in (("run",), ("evaluate",), ("sync-spool",), ("runs", "reap")):
        cmd = command
        for name in path:
            cmd = cmd.commands[name]
        defaults[path] = next(p.default for p in cmd.params if p.name == "tracking_timeout")
    assert set(defaults.values()) == {TRACKING_TIMEOUT}, defaults


def test_tracking_timeout_is_not_a_run_param():
    params = RunConfig(tracking_timeout=3).params()
    assert "tracking_timeout" not in params and params["threshold"] == "joint"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "4000"])
def test_bad_run_tracking_timeout_is_refused_naming_the_flag(store, cli, value):
    res = cli("run", "--epochs", "1", "--tracking-timeout", value)
    assert res.exit_code == 2, res.output
    assert "--tracking-timeout" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("value", [0, -2.0, float("inf"), True, "10"])
def test_tracking_settings_refuse_a_timeout_that_is_not_positive_seconds(value):
    with pytest.raises(InputError, match="--tracking-timeout: expected seconds in"):
        TrackingSettings("sqlite:///x.db", value)


def test_tracking_settings_of_a_config_resolve_its_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = TrackingSettings.of(RunConfig(tracking_timeout=4))
    assert s == TrackingSettings(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}", 4.0)
    assert not (tmp_path / "mlruns").exists()  # resolving has no side effects
    with pytest.raises(InputError, match="--tracking-uri"):
        TrackingSettings.of(EvaluateJobConfig(predictions="p.npz", tracking_uri="ftp://x"))


def test_tracking_timeout_cannot_vary_inside_a_grid(tmp_path):
    from evalkit.spec import load_spec

    spec = tmp_path / "s.toml"
    spec.write_text('dataset = "yeast"\n\n[grid]\ntracking_timeout = [1, 2]\n')
    with pytest.raises(InputError, match=r"s.toml:4: grid.tracking_timeout: cannot vary inside one experiment"):
        load_spec(spec)
