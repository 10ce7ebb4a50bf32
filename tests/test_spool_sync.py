"""Spool fixes (issue 12): sync-spool without arguments uploads to the store each run was meant for;
--register/--alias with the store down spools and exits 3 (no traceback, no models:/NAME/None)."""

from __future__ import annotations

import json
import shutil

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
    from evalkit.tracking import RunLogger

    from evalkit.errors import InfraError

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
