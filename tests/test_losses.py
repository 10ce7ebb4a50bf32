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
    # a label positive in every train row keeps weight 1: neg / pos = 0 would zero its loss for good
    np.testing.assert_allclose(pos_weight_from_targets(np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0]])), [1.0, 2.0, 2.0])


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


def _focal_reference(x, y, alpha, gamma):  # torchvision.ops.sigmoid_focal_loss(reduction="mean"), float64
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    return ((alpha * y + (1 - alpha) * (1 - y)) * loss if alpha >= 0 else loss).mean()


def _asl_paper(x, y, gamma_neg, gamma_pos, clip):  # Ridnik et al. 2021, eq. 1-3, exact logs, float64
    p = torch.sigmoid(x)
    p_m = (p - clip).clamp(min=0)
    return -(y * torch.log(p) * (1 - p) ** gamma_pos + (1 - y) * torch.log(1 - p_m) * p_m**gamma_neg).sum(1).mean()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_and_asl_have_finite_gradients_at_saturated_logits_and_match_their_formulas(dtype):
    """gamma in (0, 1) gave NaN gradients where 1 - p rounds to 0 (inf x 0, torchvision's focal too);
    ASL clamped p at 1e-8, so a positive scored below logit -18 had loss 18.4 and no gradient."""
    g = torch.Generator().manual_seed(5)
    x = (3 * torch.randn(8, 5, generator=g)).to(dtype)
    x[0] = torch.tensor([40.0, -40.0, 100.0, -100.0, 17.0])
    y = (torch.rand(8, 5, generator=g) < 0.4).to(dtype)
    y[0] = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    moderate = x.abs().amax(dim=1) < 15  # rows where the float64 reference formulas are themselves finite
    for name, opts in [("focal", {"gamma": 0.5}), ("focal", {}), ("focal", {"alpha": -1, "gamma": 0.3}),
                       ("asl", {}), ("asl", {"gamma_pos": 0.5}), ("asl", {"gamma_neg": 0.5}), ("asl", {"clip": 0})]:
        loss = build_loss(name, None, opts)
        xr = x.clone().requires_grad_(True)
        value = loss(xr, y)
        (grad,) = torch.autograd.grad(value, xr)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), (name, opts)
        o = loss_options(name, opts)
        x64, y64 = x[moderate].double(), y[moderate].double()
        ref = (_focal_reference(x64, y64, o["alpha"], o["gamma"]) if name == "focal"
               else _asl_paper(x64, y64, o["gamma_neg"], o["gamma_pos"], o["clip"]))
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert loss(x[moderate], y[moderate]).item() == pytest.approx(ref.item(), rel=tol), (name, opts)
    # a confidently wrong positive: the paper's loss (30) and gradient (-1), not the clamp's 18.4 and 0
    xr = torch.tensor([[-30.0]], dtype=dtype, requires_grad=True)
    value = build_loss("asl", None)(xr, torch.ones(1, 1, dtype=dtype))
    value.backward()
    assert value.item() == pytest.approx(30.0, rel=1e-6) and xr.grad.item() == pytest.approx(-1.0, rel=1e-6)


@pytest.mark.parametrize("name,option,value,message", [
    ("focal", "alpha", 2, r"loss 'focal' expects alpha in \[0, 1\] \(or < 0 to disable the weighting\), got 2"),
    ("focal", "gamma", -1, r"loss 'focal' expects gamma >= 0, got -1"),
    ("asl", "clip", 1.5, r"loss 'asl' expects clip in \[0, 1\), got 1.5"),
    ("asl", "gamma_neg", "nan", r"loss 'asl' expects gamma_neg >= 0, got 'nan'"),
])
def test_loss_options_outside_their_documented_range_are_refused(name, option, value, message):
    with pytest.raises(InputError, match=rf"^--loss-option {option}: {message}$"):
        loss_options(name, {option: value})
    assert loss_options("focal", {"alpha": -1})["alpha"] == -1.0  # documented: < 0 disables


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
