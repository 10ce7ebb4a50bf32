"""A real two-node Ray cluster on this machine (``ray start --head`` and a second ``ray start
--address``, 1 CPU each, loopback only) and a real ``mlflow server``: a 6-cell grid run with
``--ray-address`` runs on both nodes (each cell's run tagged with its node), logs every run to the
server and equals the sequential grid, run for run. The cluster is always stopped, also on failure.

Why not ``ray stop``: it stops every Ray process on the machine (another test's local instance,
another user's cluster); this test kills exactly the processes of the nodes it started (each node
is started in its own session, which its workers inherit).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from conftest import start_mlflow_server, stop_process_group
from test_ray import _spec

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
#: `ray start` for a node that joins a head on 127.0.0.1: Ray replaces a loopback --address with this
#: machine's routable address (services.resolve_ip_for_localhost), where a loopback-only head does not
#: listen; the joining node must connect to the address as given.
#: A Ray release without that name fails here, naming it in the node's log (shown by the failure).
RAY_START = ("import sys, ray._private.services as s; s.resolve_ip_for_localhost; "
             "s.resolve_ip_for_localhost = lambda host: host; "
             "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())")
#: a bound on waiting for a node or the grid (a hang fails the test), not a timing assertion
WAIT = 300


def _ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _session(pid: int) -> list[int]:
    """The processes of session ``pid`` (a node and every worker it started)."""
    out = []
    for p in (int(e) for e in os.listdir("/proc") if e.isdigit()):
        try:
            if os.getsid(p) == pid:
                out.append(p)
        except OSError:
            pass
    return out


def _kill_node(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the node's session until none is left (a raylet may start a worker
    meanwhile), then reap the node's own process."""
    for _ in range(50):
        pids = _session(proc.pid)
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
    proc.wait(timeout=30)


class Cluster:
    """Ray nodes started with ``ray start --block`` (each in its own session), their logs and temp dirs."""

    def __init__(self, stack: ExitStack, token: str):
        self.stack = stack
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
        # a token of our own: Ray turns token auth on when ~/.ray/auth_token exists (shared by every
        # cluster of this user); the joining node and the driver must present the same token
        self.env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        self.address: str | None = None
        self.nodes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, head: bool) -> tuple[subprocess.Popen, Path]:
        """Start a node (1 CPU, 127.0.0.1, own ports and temp dir) without waiting for it."""
        # short: Ray's unix sockets live under it (a path of at most 107 bytes)
        tmp = Path(tempfile.mkdtemp(prefix="evalkit-ray-", dir="/tmp"))
        self.stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        p = _ports(7)
        cmd = [sys.executable, "-P", "-c", RAY_START, "start", "--block", "--num-cpus", "1",
               "--node-ip-address", "127.0.0.1", "--temp-dir", str(tmp), "--object-store-memory", str(100 * 2**20),
               "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
               "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
               "--runtime-env-agent-port", str(p[4]), "--metrics-export-port", str(p[5]), "--disable-usage-stats"]
        if head:
            self.address = f"127.0.0.1:{p[6]}"
            cmd += ["--head", "--port", str(p[6]), "--include-dashboard", "false"]
        else:
            cmd += ["--address", self.address]
        with open(tmp / "start.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env, cwd=tmp, start_new_session=True)
        self.stack.callback(_kill_node, proc)
        self.nodes.append((proc, tmp))
        return proc, tmp

    @staticmethod
    def wait(node: tuple[subprocess.Popen, Path]) -> None:
        """Wait until the node says it started; fails the test with its log if it exits or hangs."""
        proc, tmp = node
        deadline = time.monotonic() + WAIT
        while "Ray runtime started" not in (tmp / "start.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not start a node:\n{(tmp / 'start.log').read_text()[-3000:]}")
            time.sleep(0.3)

    def driver_env(self) -> dict[str, str]:
        """The environment of a driver on this machine: a loopback --ray-address stays loopback
        (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 only changes how this process resolves the address)."""
        return dict(self.env, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")

    def node_ids(self) -> list[str]:
        """The ids of the cluster's live nodes (``ray.nodes()`` from a driver of its own)."""
        code = (f"import json, ray; ray.init(address={self.address!r}, include_dashboard=False, log_to_driver=False); "
                "print(json.dumps(sorted(n['NodeID'] for n in ray.nodes() if n['Alive'])))")
        out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=WAIT,
                             env=self.driver_env(), cwd=self.nodes[0][1], stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])


@contextmanager
def _cluster_and_server(tmp_path, migrated_store):
    """Start the head and the MLflow server, yield ``(cluster, join, server_uri)``; ``join()`` starts the
    second node once the head is up. Everything started here is stopped on the way out."""
    with ExitStack() as stack:
        cluster = Cluster(stack, secrets.token_hex(32))
        head = cluster.start(head=True)
        d = tmp_path / "server"
        d.mkdir()
        shutil.copy(migrated_store, d / "backend.db")  # already migrated: the server starts faster
        uri, server = start_mlflow_server(d, f"sqlite:///{d / 'backend.db'}", wait=WAIT)
        stack.callback(stop_process_group, server)

        def join() -> None:
            cluster.wait(head)
            cluster.wait(cluster.start(head=False))

        yield cluster, join, uri


def _cells(client, experiment: str) -> tuple[object, dict[str, object]]:
    """The grid's parent run and its child runs by cell label."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("evalkit.grid") == "parent"]
    kids = {r.data.tags["evalkit.cell"]: r for r in runs
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, kids


@pytest.mark.slow
def test_a_grid_on_a_two_node_cluster_runs_on_both_nodes_and_equals_the_sequential_run(
        store, tmp_path, _migrated_store):
    import mlflow

    from evalkit.workflows.grid import run_spec

    spec = _spec(tmp_path, "cluster", '[grid]\nloss = ["bce", "asl"]\nseed = [0, 1, 2]\n', epochs=1)
    with _cluster_and_server(tmp_path, _migrated_store) as (cluster, join, uri):
        seq = run_spec(str(spec))  # sequential, into the SQLite store, while the head starts
        assert len(seq.results) == 6
        join()
        nodes = cluster.node_ids()
        assert len(nodes) == 2
        proc = subprocess.run(
            [sys.executable, "-P", "-m", "evalkit", "run", str(spec), "--executor", "ray", "--ray-address",
             cluster.address, "--tracking-uri", uri], capture_output=True, text=True, timeout=WAIT,
            env=cluster.driver_env(), cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        assert f"6 cells on Ray cluster {cluster.address} (2 CPUs)" in proc.stdout + proc.stderr
        parent, kids = _cells(mlflow.MlflowClient(uri), "cluster")
        _, seq_kids = _cells(mlflow.MlflowClient(store), "cluster")

    assert parent.info.status == "FINISHED" and parent.data.params["executor"] == "ray"
    assert parent.data.tags["evalkit.cells_succeeded"] == "6" and parent.data.tags["evalkit.cells_failed"] == "0"
    assert sorted(kids) == sorted(seq_kids) == sorted(f"loss={l} seed={s}" for l in ("bce", "asl") for s in (0, 1, 2))
    ran_on = {label: r.data.tags["evalkit.ray_node_id"] for label, r in kids.items()}
    assert set(ran_on.values()) == set(nodes), ran_on  # every cell names its node; both nodes ran cells
    assert not any("evalkit.ray_node_id" in r.data.tags for r in seq_kids.values())  # not on Ray: no tag
    for label, run in kids.items():
        assert run.info.status == "FINISHED"
        mine, theirs = run.data.metrics, seq_kids[label].data.metrics
        assert "test/micro_f2" in mine and "validation/map" in mine
        assert mine.keys() == theirs.keys(), label
        for k in mine:
            assert mine[k] == pytest.approx(theirs[k], abs=1e-6, nan_ok=True), (label, k)
    for node, tmp in cluster.nodes:  # stopped: no process of either node is left
        assert node.poll() is not None and _session(node.pid) == []
        assert not tmp.exists()


def test_node_tags_outside_a_ray_worker_are_empty(monkeypatch):
    from evalkit.workflows.ray_session import node_tags

    assert not ray.is_initialized() and node_tags() == {}  # imported, not connected
    monkeypatch.setitem(sys.modules, "ray", None)  # not even imported (the sequential executor)
    assert node_tags() == {}
