import numpy as np
import pytest
import torch

from evalkit.errors import InputError
from evalkit.losses import LOSSES, build_loss, loss_options, margin_targets, pos_weight_from_targets


def test_margin_targets_index_format():
    t = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1], [1, 1, 1, 1]])
    got = margin_targets(t)
    assert got.dtype == torch.int64
    assert got.tolist() == [[1, 2, -1, -1], [-1, -1, -1, -1], [0, 3, -1, -1], [0, 1, 2, 3]]


def test_margin_loss_equals_torch_on_index_targets():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    Y = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1], [1, 1, 0, 1]])
    idx = torch.tensor([[1, 2, -1, -1], [0, -1, -1, -1], [0, 3, -1, -1], [2, 3, -1, -1], [0, 1, 3, -1]])
    expected = torch.nn.MultiLabelMarginLoss()(logits, idx)
    got = build_loss("margin", Y.numpy())(logits, Y.float())
    assert torch.allclose(got, expected)


def test_pos_weight_is_negatives_over_positives():
    Y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(pos_weight_from_targets(Y), [1 / 3, 3.0, 1.0])
    loss = build_loss("bce-pos-weight", Y)
    np.testing.assert_allclose(loss.pos_weight.numpy(), [1 / 3, 3.0, 1.0])


def test_focal_matches_reference_formula():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    pt = p * y + (1 - p) * (1 - y)
    at = 0.25 * y + 0.75 * (1 - y)
    expected = (-at * (1 - pt) ** 2 * torch.log(pt)).mean()
    assert torch.allclose(build_loss("focal", y.numpy())(logits, y), expected, atol=1e-6)


def test_focal_gamma0_alpha_off_is_bce():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    y = (torch.rand(6, 3, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    focal = build_loss("focal", y.numpy(), {"gamma": 0, "alpha": -1})
    assert torch.allclose(focal(logits, y), torch.nn.functional.binary_cross_entropy_with_logits(logits, y), atol=1e-6)


def test_asl_reference_values():
    # ASL with gamma_pos = gamma_neg = clip = 0 is BCE summed over labels, averaged over samples
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    y = (torch.rand(4, 5, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    asl = build_loss("asl", y.numpy(), {"gamma_neg": 0, "gamma_pos": 0, "clip": 0})
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / 4
    assert torch.allclose(asl(logits, y), bce, atol=1e-5)
    # a negative whose probability is below the clip contributes nothing
    asl_default = build_loss("asl", np.zeros((1, 1)))
    assert asl_default(torch.tensor([[-5.0]]), torch.tensor([[0.0]])).item() == pytest.approx(0.0, abs=1e-7)


def test_unknown_loss_and_option_messages():
    with pytest.raises(InputError, match=r"--loss: unknown loss 'hinge'; expected one of: bce, bce-pos-weight"):
        build_loss("hinge", np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"loss 'bce' has no option 'gamma'"):
        loss_options("bce", {"gamma": 2})
    with pytest.raises(InputError, match="expected a number"):
        loss_options("focal", {"gamma": "lots"})


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_trains_two_epochs(name):
    from evalkit.models import build_model
    from evalkit.train import seed_everything, train_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    Y = (X[:, :4] + 0.3 * rng.normal(size=(120, 4)) > 0).astype(np.uint8)
    seed_everything(0)
    model = build_model("mlp", 8, 4, hidden=[16], dropout=0.1)
    res = train_model(model, build_loss(name, Y), X[:90], Y[:90], X[90:], Y[90:], epochs=2, batch_size=32,
                      monitor="none")
    assert len(res.history) == 2
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in res.history)
