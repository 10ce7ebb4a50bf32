"""sync-spool uploads to the store each run was meant for; --register/--alias with the store down
spools and exits 3 (no traceback, no models:/NAME/None). The spool is locked (one sync at a time),
each entry uploads exactly once (tag evalkit.spool_id), and a corrupt entry is moved to corrupt/
with its reason before any run is created."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

from test_gates import _runs, write_predictions


def test_sync_spool_without_arguments_uploads_to_the_store_the_run_was_meant_for(store, cli, tmp_path, _migrated_store):
    blocker = tmp_path / "later"
    blocker.write_text("a file where the store's folder should be: the store cannot be opened yet")
    meant = f"sqlite:///{blocker / 'mlruns' / 'mlflow.db'}"
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", meant, "--no-per-class", "--job", "j")
    assert res.exit_code == 3, res.output
    assert "unreachable" in res.output and "Traceback" not in res.output
    [entry] = list((tmp_path / "mlruns" / "spool").iterdir())
    assert json.loads((entry / "run.json").read_text())["tracking_uri"] == meant

    res = cli("sync-spool")  # still unavailable: kept, exit 3
    assert res.exit_code == 3 and len(list((tmp_path / "mlruns" / "spool").iterdir())) == 1

    blocker.unlink()  # the store becomes available
    (blocker / "mlruns").mkdir(parents=True)
    shutil.copy(_migrated_store, blocker / "mlruns" / "mlflow.db")
    res = cli("sync-spool")
    assert res.exit_code == 0, res.output
    assert "1 spooled run(s) uploaded; 0 left" in res.output
    [r] = _runs(meant)
    assert r.info.status == "FINISHED" and r.data.tags["evalkit.job"] == "j"
    assert _runs(store) == []  # not the default store


def test_sync_spool_uploads_the_entries_whose_store_is_up_and_keeps_the_others(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    assert cli("evaluate", "--predictions", pred, "--tracking-uri", "http://127.0.0.1:9", "--no-per-class",
               "--job", "down").exit_code == 3
    from evalkit.errors import InfraError
    from evalkit.tracking import RunLogger

    try:
        with RunLogger(store, "evalkit", run_name="up", offline_reason="store down (test)") as run:
            run.log_metrics({"test/x": 1.0})
    except InfraError:
        pass
    assert len(list((tmp_path / "mlruns" / "spool").iterdir())) == 2
    res = cli("sync-spool")
    assert res.exit_code == 3, res.output
    assert "1 spooled run(s) uploaded; 1 left" in res.output and "http://127.0.0.1:9 unreachable" in res.output
    assert [r.info.run_name for r in _runs(store)] == ["up"]


def test_register_and_alias_with_the_store_going_down_spools_and_exits_3(store, cli, tmp_path, monkeypatch):
    import mlflow.pytorch

    def down(*a, **k):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(mlflow.pytorch, "log_model", down)  # the store goes down when the model is logged
    res = cli("run", "--epochs", "1", "--hidden", "8", "--register", "m", "--alias", "champion", "-o", "run.json")
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output and "TypeError" not in res.output
    assert "connection refused" in res.output and "sync-spool" in res.output
    assert "models:/m/None" not in res.output
    [entry] = list((tmp_path / "mlruns" / "spool").iterdir())
    assert (entry / "artifacts" / "model" / "MLmodel").is_file()  # nothing lost: the model is spooled
    assert not any(k.startswith("evalkit.pending") for k in json.loads((entry / "tags.json").read_text()))


def _entry(spool, name="r", status="FINISHED"):
    """A spool entry of a run named ``name`` (tag evalkit.job = name, one metric, one artifact)."""
    from evalkit.tracking.spool import Journal

    j = Journal("spooled", run_name=name, tags={"evalkit.job": name})
    j.add_metrics({"test/x": 0.5}, step=1)
    j.add_text("report.json", '{"k": 1}')
    return j.write(status, "store down (test)", spool)


def _sync(cli, store, spool):
    return cli("sync-spool", "--spool-dir", spool, "--tracking-uri", store)


def test_two_concurrent_syncs_upload_each_entry_once(store, tmp_path):
    spool = tmp_path / "spool"
    names = {_entry(spool, f"r{i}").name for i in range(3)}
    env = {**os.environ, "EVALKIT_SPOOL_FALLBACK": str(tmp_path / "fallback")}
    cmd = [sys.executable, "-P", "-m", "evalkit", "sync-spool", "--spool-dir", str(spool), "--tracking-uri", store]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(len(re.findall(r"^uploaded \S+ -> run", o, re.MULTILINE)) for o in outs) == 3, outs
    runs = _runs(store, "spooled")
    assert sorted(r.info.run_name for r in runs) == ["r0", "r1", "r2"]
    assert {r.data.tags["evalkit.spool_id"] for r in runs} == names
    assert {r.info.status for r in runs} == {"FINISHED"} and list(spool.iterdir()) == []


def test_second_sync_while_another_holds_the_spool_says_so_and_exits_0(store, cli, tmp_path, monkeypatch):
    from filelock import FileLock

    import evalkit.tracking
    from evalkit.tracking.spool_sync import lock_path, sync_spool

    spool = tmp_path / "spool"
    _entry(spool)
    monkeypatch.setattr(evalkit.tracking, "sync_spool", lambda *a, **k: sync_spool(*a, **k, lock_wait=0.1))
    with FileLock(lock_path(spool)):  # another sync is running
        [o] = sync_spool(store, spool, lock_wait=0.1)
        assert (o.status, o.path) == ("locked", spool) and "another sync is running" in o.reason
        res = _sync(cli, store, spool)
    assert res.exit_code == 0, res.output
    assert "another sync is running" in res.output and "0 spooled run(s) uploaded; 0 left" in res.output
    assert _runs(store, "spooled") == [] and len(list(spool.iterdir())) == 1  # left to the running sync
    assert [o.status for o in sync_spool(store, spool, lock_wait=0.1)] == ["uploaded"]  # lock released


def test_entry_restored_after_upload_is_not_uploaded_again(store, cli, tmp_path):
    spool = tmp_path / "spool"
    entry = _entry(spool)
    shutil.copytree(entry, tmp_path / "backup")
    res = _sync(cli, store, spool)
    assert res.exit_code == 0 and f"uploaded {entry.name} -> run" in res.output, res.output
    shutil.copytree(tmp_path / "backup", entry)  # restored from a backup (or a crash before the delete)
    res = _sync(cli, store, spool)
    assert res.exit_code == 0, res.output
    [run] = _runs(store, "spooled")
    assert f"skipped {entry.name}: already uploaded as run {run.info.run_id}" in res.output
    assert "0 spooled run(s) uploaded; 0 left; 1 skipped" in res.output
    assert list(spool.iterdir()) == []  # removed, no second run


def test_sync_failing_midway_ends_its_run_failed_and_the_next_sync_completes_that_run(store, cli, tmp_path,
                                                                                       monkeypatch):
    import mlflow

    spool = tmp_path / "spool"
    entry = _entry(spool)

    def down(*a, **k):
        raise ConnectionError("Connection refused")

    with monkeypatch.context() as m:
        m.setattr(mlflow.MlflowClient, "log_artifacts", down)  # the store fails after the run was created
        res = _sync(cli, store, spool)
    assert res.exit_code == 3, res.output
    assert f"not uploaded {entry.name}" in res.output and "0 spooled run(s) uploaded; 1 left" in res.output
    [run] = _runs(store, "spooled")
    assert run.info.status == "FAILED" and "evalkit.spool_synced" not in run.data.tags  # not left RUNNING
    assert entry.is_dir()  # kept
    res = _sync(cli, store, spool)
    assert res.exit_code == 0, res.output
    [again] = _runs(store, "spooled")  # the same run, completed: no duplicate
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert again.data.metrics == {"test/x": 0.5} and again.data.tags["evalkit.job"] == "r"
    assert [a.path for a in mlflow.MlflowClient(store).list_artifacts(run.info.run_id)] == ["report.json"]


def test_corrupt_entries_are_moved_aside_with_their_reason_and_create_no_run(store, cli, tmp_path):
    spool = tmp_path / "spool"
    bogus = _entry(spool, "bogus", status="BOGUS")
    empty_tags = _entry(spool, "empty-tags")
    (empty_tags / "tags.json").write_text("")
    bad_metric = _entry(spool, "bad-metric")
    (bad_metric / "metrics.json").write_text('[{"key": "x", "value": "high", "step": 0, "timestamp": 1}]')
    good = _entry(spool, "good")
    res = _sync(cli, store, spool)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert f"corrupt {bogus.name}: run.json: 'status' must be one of FINISHED, FAILED, KILLED, got 'BOGUS'" in res.output
    assert f"corrupt {empty_tags.name}: tags.json: not valid JSON (empty file)" in res.output
    assert f"corrupt {bad_metric.name}: metrics.json: item 0 must be" in res.output
    assert "1 spooled run(s) uploaded; 0 left; 3 corrupt" in res.output
    assert "3 corrupt spool entries moved aside" in res.output
    assert [r.info.run_name for r in _runs(store, "spooled")] == ["good"]  # no run for a corrupt entry
    quarantine = spool / "corrupt"
    assert sorted(p.name for p in quarantine.iterdir() if p.is_dir()) == sorted(
        [bogus.name, empty_tags.name, bad_metric.name])
    assert "'BOGUS'" in (quarantine / f"{bogus.name}.reason").read_text()
    assert not good.exists()
    res = _sync(cli, store, spool)  # the next sync: nothing left, no new run
    assert res.exit_code == 0 and "0 spooled run(s) uploaded; 0 left" in res.output, res.output
    assert len(_runs(store, "spooled")) == 1


def test_symlink_in_entry_is_refused(store, cli, tmp_path):
    spool = tmp_path / "spool"
    entry = _entry(spool)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the tracking store")
    (entry / "artifacts" / "hostname").symlink_to(secret)
    res = _sync(cli, store, spool)
    assert res.exit_code == 2, res.output
    assert f"corrupt {entry.name}: artifacts/hostname: a symlink (refused)" in res.output
    assert _runs(store, "spooled") == []
    assert (spool / "corrupt" / entry.name / "artifacts" / "hostname").is_symlink()


def test_entry_validation_names_the_file_and_field():
    """load() reads an entry whole and refuses what sync could not upload faithfully."""
    import tempfile
    from pathlib import Path

    import pytest

    from evalkit.tracking.spool import CorruptEntry, load

    with tempfile.TemporaryDirectory() as tmp:
        entry = _entry(Path(tmp))
        assert load(entry).run["status"] == "FINISHED"
        cases = {
            "run.json": ('{"experiment": "", "status": "FINISHED"}', "'experiment' must be a non-empty string"),
            "params.json": ('["a"]', "params.json: expected a JSON object"),
            "tags.json": ('{"k": null}', "tags.json: 'k' must have a non-empty name"),
            "metrics.json": ('{"key": "x"}', "metrics.json: expected a JSON list"),
        }
        for name, (text, message) in cases.items():
            saved = (entry / name).read_text()
            (entry / name).write_text(text)
            with pytest.raises(CorruptEntry, match=re.escape(message)):
                load(entry)
            (entry / name).write_text(saved)
        (entry / "run.json").unlink()
        with pytest.raises(CorruptEntry, match="run.json: missing"):
            load(entry)
