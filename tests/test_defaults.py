"""The documented defaults: losses from their sources, the run defaults the manual explains."""

from evalkit.config import RunConfig
from evalkit.losses import LOSSES, loss_options


def test_loss_defaults_follow_their_papers():
    assert loss_options("focal") == {"alpha": 0.25, "gamma": 2.0}  # Lin et al. 2017
    assert loss_options("asl") == {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05}  # Ridnik et al. 2021
    for spec in LOSSES.values():
        assert spec.summary and spec.when  # every loss says what it is and when it helps


def test_run_defaults_are_the_documented_ones():
    c = RunConfig()
    assert (c.model, c.hidden, c.dropout, c.input_noise, c.budget) == ("auto", [1024], 0.5, 0.8, "auto")
    assert (c.optimizer, c.lr, c.batch_size, c.monitor, c.patience, c.epochs) == ("adamw", 1e-3, 64, "val_map", 15, 150)
    assert (c.folds, c.threshold, c.objective, c.beta, c.loss) == (5, "joint", "mean-fbeta", 2.0, "bce")


def test_manual_documents_the_defaults():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    text = "\n".join(p.read_text() for p in sorted(docs.rglob("*.md")) if "drafts" not in p.parts)
    for needle in ("--threshold joint --objective mean-fbeta", "`--folds 5`", "input noise", "reference_at_0.5",
                   "test_at_0.5/", "paired t-test"):
        assert needle in text, needle
