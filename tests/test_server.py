"""Integration with a real MLflow tracking server (started here, polled until healthy, stopped after):
`run` logs and registers a champion; the nightly `evaluate --model models:/NAME@champion` gates
against the champion's run; a server that stops mid-job fails the job fast (exit 3) without losing
the result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from conftest import start_mlflow_server, stop_process_group
from test_gates import write_predictions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, _migrated_store):
    d = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(_migrated_store, d / "backend.db")  # already migrated: the server starts faster
    uri, proc = start_mlflow_server(d, f"sqlite:///{d / 'backend.db'}", wait=90)
    state = {"uri": uri, "proc": proc, "dir": d}
    yield state
    stop_process_group(proc)


def _stop(state) -> None:
    os.killpg(state["proc"].pid, signal.SIGTERM)
    state["proc"].wait(timeout=20)


def test_run_then_scheduled_evaluate_of_the_champion_against_the_server(server, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = server["uri"]
    res = cli("run", "--epochs", "2", "--hidden", "16", "--tracking-uri", uri, "--experiment", "yeast",
              "--register", "yeast-mlp", "--alias", "champion", "-o", tmp_path / "run.json")
    assert res.exit_code == 0, res.output
    import mlflow

    client = mlflow.MlflowClient(uri)
    run_id = client.get_model_version_by_alias("yeast-mlp", "champion").run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "test/macro_f2" in run.data.metrics
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2]

    out = tmp_path / "nightly.json"
    res = cli("evaluate", "--model", "models:/yeast-mlp@champion", "--dataset", "yeast", "--tracking-uri", uri,
              "--experiment", "nightly", "--trigger", "scheduled", "--job", "nightly-yeast",
              "--gate", "test/macro_f2>=0.0", "--baseline", "champion", "--max-drop", "test/macro_f2=0.01",
              "--no-per-class", "-o", out, "--force")
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["gates"]["status"] == "pass"
    assert rep["gates"]["baseline"]["run_id"] == run_id  # the run that produced the champion
    assert rep["gates"]["results"][1]["baseline"] == pytest.approx(run.data.metrics["test/macro_f2"])
    ev = client.get_run(rep["run_id"])
    assert ev.data.tags["evalkit.trigger"] == "scheduled" and ev.data.tags["evalkit.gate"] == "pass"
    assert ev.data.tags["evalkit.job"] == "nightly-yeast" and ev.info.status == "FINISHED"
    assert "report.json" in {a.path for a in client.list_artifacts(rep["run_id"])}
    # a gate the champion cannot meet: exit 1, the run is still recorded, tagged fail
    res = cli("evaluate", "--model", "models:/yeast-mlp@champion", "--dataset", "yeast", "--tracking-uri", uri,
              "--experiment", "nightly", "--trigger", "scheduled", "--job", "nightly-yeast",
              "--gate", "test/subset_accuracy>=0.99", "--no-per-class", "-o", out, "--force")
    assert res.exit_code == 1, res.output
    assert json.loads(out.read_text())["gates"]["results"][0]["status"] == "fail"
    # the history of the job
    res = cli("compare", "--tracking-uri", uri, "--experiment", "nightly", "--trigger", "scheduled",
              "--metric", "test/macro_f2", "--format", "json")
    assert [r["gate"] for r in json.loads(res.stdout)] == ["pass", "fail"]


class _SlowProxy:
    """An HTTP proxy in front of the server that holds ``slow_path`` requests for ``delay`` seconds:
    a server that answers, but slowly (loaded by other jobs); with ``drop=k``, the first ``k`` such
    requests are closed without an answer instead (a server worker restarted while holding them)."""

    def __init__(self, upstream: str, slow_path: str, delay: float = 0.0, drop: int = 0):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        up = urlsplit(upstream)
        self.held = 0
        self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if slow_path in self.path and proxy.dropped < drop:
                    proxy.dropped += 1
                    self.close_connection = True  # "Remote end closed connection without response"
                    return
                if slow_path in self.path:
                    proxy.held += 1
                    time.sleep(delay)
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _evaluate_through(proxy: _SlowProxy, cli, tmp_path, experiment: str, *flags):
    """``evalkit evaluate`` of a predictions file, tracked through ``proxy`` (closed afterwards);
    the report goes to ``tmp_path / "r.json"``."""
    try:
        pred = write_predictions(tmp_path / "p.npz")
        return cli("evaluate", "--predictions", pred, "--tracking-uri", proxy.uri, "--experiment", experiment,
                   "--no-per-class", "-o", tmp_path / "r.json", *flags)
    finally:
        proxy.close()


def _recorded_run(server, tmp_path):
    """The MLflow run of the report ``tmp_path / "r.json"``, read from the server itself."""
    import mlflow

    run_id = json.loads((tmp_path / "r.json").read_text())["run_id"]
    return mlflow.MlflowClient(server["uri"]).get_run(run_id)


def test_a_slow_but_answering_server_records_the_run(server, cli, tmp_path, monkeypatch):
    """--tracking-timeout bounds reaching the server; once it answered, a slow request (a loaded
    shared server) is waited for, not failed and spooled (CI: 10 clients on 2 cores timed out)."""
    monkeypatch.chdir(tmp_path)
    proxy = _SlowProxy(server["uri"], "/runs/update", delay=4.0)  # run end: 4 s, twice the old 2 s per request
    res = _evaluate_through(proxy, cli, tmp_path, "slow", "--tracking-timeout", "4")
    assert res.exit_code == 0, res.output
    assert proxy.held >= 1  # the slow request did happen
    assert not (tmp_path / "mlruns" / "spool").exists()
    assert _recorded_run(server, tmp_path).info.status == "FINISHED"


def test_the_first_probe_waits_the_whole_tracking_timeout(server, cli, tmp_path, monkeypatch):
    """A loaded server that answers evalkit's first probe after 6 s is there when the user allowed
    10 s (the probe used to give up at half the timeout: exit 3, results spooled)."""
    monkeypatch.chdir(tmp_path)
    proxy = _SlowProxy(server["uri"], "/experiments/search", delay=6.0)  # the probe's request
    res = _evaluate_through(proxy, cli, tmp_path, "slow-probe", "--tracking-timeout", "10")
    assert res.exit_code == 0, res.output
    assert proxy.held >= 1
    assert not (tmp_path / "mlruns" / "spool").exists()
    assert _recorded_run(server, tmp_path).info.status == "FINISHED"


def test_connections_the_server_drops_are_retried_not_spooled(server, cli, tmp_path, monkeypatch):
    """A loaded server that closes connections without an answer (uvicorn kills and restarts a worker
    that misses its health check; CI: 3 of 8 nightly jobs spooled) is retried after it has answered:
    a batch of metrics is dropped 3 times and the run is still recorded, nothing spooled."""
    monkeypatch.chdir(tmp_path)
    proxy = _SlowProxy(server["uri"], "/runs/log-batch", drop=3)
    res = _evaluate_through(proxy, cli, tmp_path, "dropped")
    assert res.exit_code == 0, res.output
    assert proxy.dropped == 3 and proxy.held >= 1  # three attempts dropped, the fourth answered
    assert not (tmp_path / "mlruns" / "spool").exists()
    run = _recorded_run(server, tmp_path)
    assert run.info.status == "FINISHED" and "test/macro_f2" in run.data.metrics


def test_evaluate_predictions_against_the_server_then_server_stops(server, cli, tmp_path, monkeypatch):
    """Runs last in this module: it stops the server."""
    monkeypatch.chdir(tmp_path)
    uri = server["uri"]
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", uri, "--experiment", "preds", "--no-per-class")
    assert res.exit_code == 0, res.output
    _stop(server)  # the server goes away
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", uri, "--experiment", "preds", "--no-per-class",
              "-o", tmp_path / "r.json")
    assert res.exit_code == 3, res.output
    assert "unreachable" in res.output and "connection refused" in res.output, res.output
    assert json.loads((tmp_path / "r.json").read_text())["summary"]
    [entry] = list((tmp_path / "mlruns" / "spool").iterdir())
    assert json.loads((entry / "run.json").read_text())["experiment"] == "preds"
