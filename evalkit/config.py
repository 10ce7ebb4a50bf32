"""Configurations: the ONLY place where evalkit's defaults live.

:class:`RunConfig` defines one ``evalkit run`` and :class:`EvaluateJobConfig` one ``evalkit evaluate``
(a scheduled, gated evaluation job). The command line derives its options from these models (names,
types, help and shown defaults: :mod:`evalkit.cli.options`), TOML specs are validated by them
(:mod:`evalkit.spec`), and the Python API takes them as they are. Unknown fields are rejected.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: largest hidden layer / batch accepted (a typo such as 2000000000 is refused before any allocation)
MAX_WIDTH = 1 << 16
#: ``evalkit datasets download``: the MULAN repository's multi-label datasets (one folder per dataset)
MULAN_MIRROR = "https://raw.githubusercontent.com/tsoumakas/mulan/master/data/multi-label"
#: ... and where they go (what the README's examples use)
DATASETS_DIR = "datasets/mulan"
#: reader options a data file may take (``--label-file`` ...); see ``evalkit datasets``
READER_OPTIONS = ("label_file", "meka_labels", "label_columns", "label_prefix", "label_list_column",
                  "label_sep", "drop_columns")


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("expected a finite number")
    return v


class RunConfig(BaseModel):
    """Everything that defines one ``evalkit run`` (train, tune thresholds, evaluate, track).

    Every field is an ``evalkit run --FIELD`` option (``register_model`` is ``--register``; the
    ``reader_options`` keys are ``--label-file`` ...; ``loss_options`` is ``--loss-option KEY=VALUE``)
    and a key of an experiment spec (``experiments/*.toml``).

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data
    dataset: str = Field("yeast", description="Built-in dataset name (yeast) or a data file (see `evalkit datasets`).")
    test_dataset: str | None = Field(None, description="Test file; default: the standard split or a stratified split.")
    reader_options: dict[str, Any] = Field(default_factory=dict, description="Reader options (label_file, label_columns, ...).")
    val_size: float = Field(0.2, gt=0, lt=1, description="Validation fraction of the training data (used with --folds 1).")
    test_size: float = Field(0.3, gt=0, lt=1, description="Test fraction of a stratified split when there is no test file.")
    standardize: bool = Field(True, description="Standardise features with the training split's mean and std.")
    # model: defaults chosen on yeast / emotions / scene (README "evalkit run"): one wide hidden
    # layer with strong dropout and Gaussian input noise, early-stopped on validation mAP
    # auto: the linear one-vs-rest model wins on sparse bag-of-words data (medical), the MLP elsewhere
    model: str = Field("auto", description="Architecture: auto (linear or mlp, whichever has the higher validation mAP on "
                       "the first fold; cnn for images), mlp, linear, cnn (images (N, c, H, W)), or a torchvision "
                       "backbone for images: resnet18, resnet50, densenet121, efficientnet_b0, convnext_tiny.")
    hidden: list[int] = Field(default_factory=lambda: [1024], description="MLP hidden sizes, e.g. 256 or 512,256.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout after each hidden layer, in [0, 1).")
    activation: Literal["relu", "gelu", "tanh", "silu"] = Field("relu", description="Hidden-layer activation.")
    batch_norm: bool = Field(False, description="Batch normalisation after each hidden layer.")
    # image backbones (--model resnet18 ...: evalkit.images.backbones)
    image_size: int | None = Field(None, ge=8, le=4096, description="Backbones: side images are resized to "
                                   "(default: the image side, at least 32).")
    pretrained: bool = Field(False, description="Backbones: start from torchvision's ImageNet weights (its cache, "
                             "or downloaded); offline, use --weights FILE.")
    weights: str | None = Field(None, description="Backbones: a local state_dict file to start from (ImageNet "
                                "weights, or a backbone of the same labels).")
    freeze_backbone: bool = Field(False, description="Backbones: train the head only (see --unfreeze-after).")
    unfreeze_after: int | None = Field(None, ge=1, description="Backbones with --freeze-backbone: train the whole "
                                       "network after N epochs of the head alone.")
    # loss
    loss: str = Field("bce", description="bce, bce-pos-weight, soft-margin, margin, focal, asl (see `evalkit losses`).")
    loss_options: dict[str, float] = Field(default_factory=dict, description="Loss option KEY=VALUE, repeatable (e.g. gamma=2).")
    # training
    optimizer: Literal["adam", "adamw", "lbfgs"] = Field(
        "adamw", description="Optimizer: adam, adamw (mini-batch), or lbfgs (full batch, --model linear only: "
        "L2 logistic regression with --weight-decay as 1/C of scikit-learn; an epoch is 10 iterations).")
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="Weight decay.")
    epochs: int = Field(150, ge=1, le=100_000, description="Maximum epochs.")
    batch_size: int = Field(64, ge=1, le=MAX_WIDTH, description="Mini-batch size.")
    patience: int = Field(15, ge=1, description="Early-stopping patience in epochs.")
    monitor: Literal["val_loss", "val_map", "val_micro_f2", "val_macro_f2", "none"] = Field(
        "val_map", description="Early stopping on val_loss, val_map, val_micro_f2, val_macro_f2 or none.")
    input_noise: float = Field(0.8, ge=0, description="Std of Gaussian noise added to the standardised training features (0 = off).")
    folds: int = Field(5, ge=1, le=20, description="Cross-fitting: K models on K folds of train + validation, thresholds tuned "
                       "on out-of-fold scores; 1 = one model and a validation split.")
    budget: Literal["auto", "off"] = Field(
        "auto", description="auto: --folds, --epochs and --batch-size, when not given, follow the data size (README "
        "'Training budget'); off: their defaults as they are.")
    seed: int = Field(0, description="Random seed (splits, init, shuffling).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA when available.")
    # one thread: evalkit's MLPs are small, and several threads are much slower on shared cores
    # (measured 5 s vs 150 s for 30 yeast epochs under load)
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="CUDA only: mixed-precision training under "
                                                 "autocast (fp16 with a gradient scaler), images channels_last; "
                                                 "on the CPU training stays exact float32.")
    threads: int = Field(1, ge=1, le=1024, description="CPU threads for torch (1 is fastest for small MLPs, above all on shared cores).")
    # folds 2..K are independent: with spare cores, processes train them at once, same models
    # (measured on yeast, 2 cores: benchmarks/bench_cli.py --folds)
    fold_processes: int = Field(0, ge=0, le=1024, description="Processes that train cross-fitting folds 2..K at once "
                                "(the same models as one after another): 0 = auto (the available CPU cores / --threads "
                                "when a fold is big enough to pay for a worker's start), 1 = one after another.")
    # evaluation
    threshold: str = Field("joint", description="joint, global, per-class, fixed:T, top-k:K or pcut; fitted on validation only.")
    objective: Literal["micro-fbeta", "macro-fbeta", "mean-fbeta"] = Field(
        "mean-fbeta", description="What threshold tuning maximises: micro-fbeta, macro-fbeta or mean-fbeta (their mean), with --beta.")
    beta: float = Field(2.0, gt=0, description="Beta of the reported and tuned F-beta (2 = recall weighs 4x).")
    # tracking / output
    experiment: str = Field("evalkit", description="MLflow experiment name.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")
    run_name: str | None = Field(None, description="MLflow run name.")
    log_model: bool = Field(True, description="Log the model to MLflow.")
    register_model: str | None = Field(None, description="Register the logged model under NAME in the MLflow model registry.")
    alias: str | None = Field(None, description="Point this alias (e.g. champion) of --register NAME at the new version.")
    output: str | None = Field(None, description="Write the report JSON here.")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(h < 1 or h > MAX_WIDTH for h in v):
            raise ValueError(f"hidden layer sizes must lie in 1..{MAX_WIDTH}")
        return v

    @field_validator("lr", "weight_decay", "beta", "input_noise", "dropout", "val_size", "test_size")
    @classmethod
    def _is_finite(cls, v: float) -> float:
        return _finite(v)

    def with_budget(self, n_train: int, n_features: int, n_labels: int) -> "RunConfig":
        """This config with ``folds``, ``epochs`` and ``batch_size`` set by the training-budget rule
        (``budget = "auto"``; fields given explicitly are kept). ``n_train``: rows of train + validation.

        The rule (README "Training budget"), with ``W = n_train x (F + C) x width`` the multiply-adds
        of one epoch of the MLP (``width`` = the sum of the hidden sizes):

        * ``folds``: 5 up to 3,000 rows, 3 up to 8,000, else 1 (one model and a validation split);
        * ``batch_size``: 64, doubled (at most to 512) while an epoch has more than 100 steps;
        * ``epochs``: 150, cut to ``EPOCH_WORK / (folds x W)`` (at least 20) on large problems.
        """
        if self.budget == "off":
            return self
        given = self.model_fields_set
        update: dict[str, Any] = {}
        folds = self.folds if "folds" in given else budget_folds(n_train)
        if "folds" not in given:
            update["folds"] = folds
        per_fold = int(n_train * (1 - self.val_size)) if folds == 1 else n_train * (folds - 1) // folds
        if "batch_size" not in given:
            update["batch_size"] = budget_batch_size(per_fold)
        if "epochs" not in given:
            width = sum(self.hidden) if self.hidden else 1
            update["epochs"] = budget_epochs(per_fold * (n_features + n_labels) * width, folds, self.epochs)
        return self.model_copy(update=update) if update else self

    def params(self) -> dict[str, Any]:
        """Flat params for tracking: every field but paths of outputs, ``hidden`` as ``"512,256"``,
        loss options as ``loss.<name>`` (with their defaults) and reader options as ``data.<name>``."""
        from evalkit.losses import loss_options

        p = self.model_dump(exclude={"reader_options", "loss_options", "tracking_uri", "output", "experiment", "run_name"})
        p["hidden"] = ",".join(map(str, self.hidden))
        for k, v in loss_options(self.loss, self.loss_options).items():
            p[f"loss.{k}"] = v
        for k, v in self.reader_options.items():
            p[f"data.{k}"] = v
        return p


#: ``--model auto``'s candidates, in order of preference on a tie, with the settings each trains with
#: beyond the run's own (evalkit.workflows.model_choice)
#: (linear = L2 logistic regression fitted by full-batch L-BFGS, C = 1 as scikit-learn's default)
#: trained to convergence (``monitor = none``: the L2 penalty regularises, not early stopping)
#: and at most 100 iterations (10 "epochs": scikit-learn's max_iter default)
AUTO_CANDIDATES: dict[str, dict[str, Any]] = {"linear": {"optimizer": "lbfgs", "weight_decay": 1.0, "monitor": "none",
                                                         "epochs": 10},
                                              "mlp": {}}

#: settings an architecture trains with unless the run gives them (command line or spec).
#: Images: no Gaussian input noise (pixel noise blurs strokes; augmentation is the image regulariser).
#: cnn: lr 3e-3: BatchNorm after every convolution tolerates it, and at 1e-3 five epochs leave the
#: CNN under-trained (digits-grid, 5 epochs, folds 1: micro-F2 0.839 at 1e-3, 0.888 at 3e-3).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {"cnn": {"lr": 3e-3, "input_noise": 0.0}}
#: the settings every image backbone (evalkit.images.backbones) trains with unless given
BACKBONE_DEFAULTS: dict[str, Any] = {"input_noise": 0.0}


#: multiply-adds of MLP training (all folds) the budget rule allows before it cuts epochs: about
#: 60 s of one CPU core at ~20 GFLOP/s (forward + backward ~ 3x the forward pass)
EPOCH_WORK = 4e11


def budget_folds(n_train: int) -> int:
    """Cross-fitting folds of the budget rule: 5 up to 3,000 training rows, 3 up to 8,000, else 1."""
    return 5 if n_train <= 3_000 else 3 if n_train <= 8_000 else 1


def budget_batch_size(n_fit: int) -> int:
    """Mini-batch of the budget rule: 64, doubled (up to 512) while an epoch would take > 100 steps."""
    batch = 64
    while batch < 512 and n_fit / batch > 100:
        batch *= 2
    return batch


def budget_epochs(epoch_work: float, folds: int, epochs: int = 150) -> int:
    """Maximum epochs of the budget rule: ``epochs``, cut so that ``folds x epochs x epoch_work``
    stays within :data:`EPOCH_WORK` multiply-adds, but never below 20 (early stopping usually ends
    training well before the cap)."""
    cap = int(EPOCH_WORK / max(folds * epoch_work, 1.0))
    return max(min(epochs, 20), min(epochs, cap))


class EvaluateJobConfig(BaseModel):
    """Everything that defines one ``evalkit evaluate`` job: what to evaluate (``predictions`` or
    ``model``), how (thresholds, beta), its quality gates, and where the run is tracked.

    The ``[evaluate]`` table of a job spec (``evalkit evaluate --spec FILE``) holds these fields.

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what
    predictions: str | None = Field(None, description="Predictions file: .npz (targets + logits or probabilities), .parquet or .csv.")
    model: str | None = Field(None, description="Model to evaluate: runs:/<id>/<name>, models:/<name>/<version>, "
                              "models:/<name>@<alias>, or a TorchScript / .pt2 / state_dict file.")
    dataset: str | None = Field(None, description="With --model: built-in name or data file, evaluated on its test split "
                                "(default: the model's training data).")
    test_dataset: str | None = Field(None, description="With --model: a test file, evaluated whole.")
    reader_options: dict[str, Any] = Field(default_factory=dict, description="Reader options (label_file, label_columns, ...).")
    arch: str | None = Field(None, description="Architecture of a state_dict file: linear, mlp or cnn.")
    hidden: list[int] | None = Field(None, description="MLP hidden sizes of a state_dict file, e.g. 256 or 512,256.")
    trust_pickle: bool = Field(False, description="Allow loading a pickled model (runs code from the file: trusted files only).")
    preprocess: str | None = Field(None, description="preprocess.json of a model file (default: <model>.preprocess.json "
                                   "or preprocess.json next to it).")
    scores: Literal["logits", "probabilities"] = Field("logits", description="What --model outputs: logits or probabilities "
                                                       "(the model ends with a sigmoid).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="With --model: auto picks CUDA when available.")
    amp: Literal["bf16", "fp16"] | None = Field(None, description="With --model on CUDA: bf16 or fp16 autocast (ignored on CPU).")
    label_map: str | None = Field(None, description="With --model: CSV (source,target) or JSON {source: target} mapping "
                                  "labels to a coarser set.")
    map_reduce: Literal["max", "sum", "mean"] = Field("max", description="How --label-map combines source probabilities: "
                                                      "max, sum (clipped to 1) or mean.")
    # how
    threshold: str | None = Field(None, description="A cut in (0, 1), a comma list (one per label), or a JSON/CSV file of "
                                  "per-label cuts. Default 0.5; with --model: the thresholds its run chose.")
    beta: float = Field(2.0, gt=0, description="Beta of the reported F-beta.")
    threshold_free: Literal["exact", "streaming", "none"] = Field(
        "exact", description="exact (matches scikit-learn), streaming (O(C x bins) memory) or none.")
    batch_size: int = Field(65536, ge=1, le=1 << 24, description="Rows read (or scored) per batch.")
    output: str | None = Field(None, description="Write the report JSON here.")
    per_class: str = Field("top", pattern=r"^(top|all|none|[1-9][0-9]*)$",
                           description="Per-class table: top (the labels with the largest support, at most "
                           "50 rows), all, none, or a row count N.")
    # gates
    gates: list[str] = Field(default_factory=list, description='Gate METRIC OP NUMBER (OP: >=, >, <=, <), repeatable, '
                             'e.g. "test/macro_f2>=0.55"; exit 1 when one fails.')
    baseline: str | None = Field(None, description="Baseline of --max-drop: last (last finished run of this --job), champion "
                                 "(run behind models:/NAME@champion), models:/NAME@ALIAS, or a run id.")
    max_drop: list[str] = Field(default_factory=list, description="Relative gate METRIC=AMOUNT: at most AMOUNT worse than the "
                                "baseline, repeatable, e.g. test/macro_f2=0.01.")
    # tracking
    trigger: Literal["manual", "scheduled"] = Field("manual", description="Tag evalkit.trigger of the MLflow run: manual or "
                                                    "scheduled (cron / CI).")
    job: str | None = Field(None, description="Job name (tag evalkit.job; --baseline last compares within it); default: the "
                            "predictions file name or the model.")
    experiment: str = Field("evalkit", description="MLflow experiment name.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")
    track: bool = Field(True, description="Log the evaluation as an MLflow run.")
    tracking_timeout: float = Field(10.0, gt=0, le=3600, description="Seconds to wait for the tracking store before failing "
                                    "with exit 3 (results are spooled to mlruns/spool; see sync-spool).")

    @field_validator("beta", "tracking_timeout")
    @classmethod
    def _is_finite(cls, v: float) -> float:
        return _finite(v)

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(h < 1 or h > MAX_WIDTH for h in v):
            raise ValueError(f"hidden layer sizes must lie in 1..{MAX_WIDTH}")
        return v

    @property
    def job_name(self) -> str:
        """``job``, else the predictions file name, else the model spec."""
        from pathlib import Path

        if self.job:
            return self.job
        return Path(self.predictions).name if self.predictions else str(self.model)


class ExecutorConfig(BaseModel):
    """Where the cells of a spec grid (and the trials of ``evalkit tune``) run: the ``[executor]``
    table of a spec and the ``run`` / ``tune`` options ``--executor``, ``--ray-address``,
    ``--max-concurrent``, ``--cpus-per-cell``, ``--gpus-per-cell``, ``--max-retries``.

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: Literal["sequential", "ray"] = Field("sequential", description="sequential (one cell after another, in this "
                                               "process) or ray (cells as Ray tasks; needs evalkit[ray]).")
    address: str | None = Field(None, description="Ray cluster to join (auto or ray://HOST:PORT); default: start a "
                                "local Ray instance. A cluster needs an MLflow server as the tracking store.")
    max_concurrent: int | None = Field(None, ge=1, le=100_000, description="Cells running at once (default: as many as "
                                       "the CPUs / GPUs allow).")
    cpus_per_cell: float = Field(1.0, gt=0, le=1024, description="CPUs reserved per cell (also its torch threads, "
                                 "rounded down, at least 1).")
    gpus_per_cell: float = Field(0.0, ge=0, le=64, description="GPUs reserved per cell (fractions share a GPU).")
    max_retries: int = Field(0, ge=0, le=100, description="Retries of a cell that raises or whose worker dies, "
                             "before it is marked FAILED.")


class SearchConfig(BaseModel):
    """The settings of ``evalkit tune`` besides the search space: the ``[search]`` table of a spec
    (its other keys are :class:`RunConfig` fields mapped to spaces, see :mod:`evalkit.workflows.tune`).

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    num_samples: int = Field(8, ge=1, le=100_000, description="Trials sampled from the space.")
    # mAP is threshold-free, so the out-of-fold value is unbiased; F2 at cuts fitted on the same
    # out-of-fold scores is optimistic (still never a test number)
    metric: Literal["validation/map", "validation/mean_f2", "validation/micro_f2", "validation/macro_f2"] = Field(
        "validation/map", description="What the search maximises: a validation (cross-fitted, out-of-fold) metric, "
        "never a test-split number.")
    scheduler: Literal["none", "asha"] = Field("none", description="Early stopping of weak trials: none or asha (ASHA, "
                                               "on the per-epoch validation metric of the first fold).")
    grace_period: int = Field(5, ge=1, description="ASHA: epochs every trial runs before it may be stopped.")
    reduction_factor: float = Field(3.0, gt=1, description="ASHA: keep 1 / reduction_factor of the trials per rung.")
    seed: int = Field(0, description="Seed of the search's sampling (trial configs are reproducible).")


#: the defaults other modules' function signatures use, read from the models above (one source)
DEFAULT_BETA: float = RunConfig.model_fields["beta"].default
DEFAULT_THRESHOLD_FREE: str = EvaluateJobConfig.model_fields["threshold_free"].default
