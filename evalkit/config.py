"""Configurations: the ONLY place where evalkit's defaults live.

:class:`RunConfig` defines one ``evalkit run`` and :class:`EvaluateJobConfig` one ``evalkit evaluate``
(a scheduled, gated evaluation job). The command line derives its options from these models (names,
types, help and shown defaults: :mod:`evalkit.cli.options`), TOML specs are validated by them
(:mod:`evalkit.spec`), and the Python API takes them as they are. Unknown fields are rejected.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalkit.budget import EPOCH_WORK, budget_batch_size, budget_epochs, budget_folds, budget_update  # noqa: F401
from evalkit.field_checks import Number as _Number
from evalkit.field_checks import checked as _checked
from evalkit.field_checks import elementwise_not_bool as _elementwise_not_bool
from evalkit.field_checks import finite as _finite
from evalkit.field_checks import not_blank as _not_blank
from evalkit.reader_options import READER_OPTIONS, ReaderOptions  # noqa: F401  (names and types; re-exported)

#: largest hidden layer / batch accepted (a typo such as 2000000000 is refused before any allocation)
MAX_WIDTH = 1 << 16
#: ``evalkit datasets download``: the MULAN repository's multi-label datasets (one folder per dataset)
MULAN_MIRROR = "https://raw.githubusercontent.com/tsoumakas/mulan/master/data/multi-label"
#: ... and where they go (what the manual's examples use)
DATASETS_DIR = "datasets/mulan"
#: seconds every command waits for the tracking store (``--tracking-timeout``): the one place this
#: default is written (RunConfig, EvaluateJobConfig, ``runs reap``, ``sync-spool`` and
#: :class:`evalkit.tracking.settings.TrackingSettings` read it from here)
TRACKING_TIMEOUT = 10.0
#: the longest ``--tracking-timeout`` accepted (seconds)
MAX_TRACKING_TIMEOUT = 3600.0


def _tracking_timeout_field():
    """The ``tracking_timeout`` field of :class:`RunConfig` and :class:`EvaluateJobConfig` (one definition)."""
    return Field(TRACKING_TIMEOUT, gt=0, le=MAX_TRACKING_TIMEOUT, description="Seconds to wait for the tracking store "
                 "before failing with exit 3 (results are spooled to mlruns/spool; see sync-spool).")


def _ci_fields(seeded_by: str) -> tuple:
    """``ci``, ``ci_resamples`` and ``ci_method`` of :class:`RunConfig` and :class:`EvaluateJobConfig`
    (bootstrap intervals over the test rows: :mod:`evalkit.stats.bootstrap`; seeded by ``seeded_by``)."""
    return (Field(0.95, ge=0, lt=1, description="Confidence level of bootstrap intervals over the test rows on every "
                  f"headline metric, e.g. 0.95 (0 = off); the resampling seed is {seeded_by}."),
            Field(1000, ge=10, le=100_000, description="Bootstrap resamples of --ci."),
            Field("percentile", description="Interval of --ci: percentile (mAP: studentized where resampled "
                  "exactly) or bca (bias-corrected and accelerated)."))


@lru_cache(maxsize=256)
def threshold_strategy(text: str):
    """The parsed :class:`~evalkit.thresholds.ThresholdStrategy` of a ``threshold`` value (cached: a
    strategy is immutable, so the config's validator and every later use share one parse).

    Raises:
        InputError: ``--threshold: ...`` an unknown strategy, T outside (0, 1), K not a whole number >= 1.
    """
    from evalkit.thresholds import parse_strategy

    return parse_strategy(text)


class RunConfig(BaseModel):
    """Everything that defines one ``evalkit run`` (train, tune thresholds, evaluate, track).

    Every field is an ``evalkit run --FIELD`` option (``register_model`` is ``--register``; the
    ``reader_options`` keys are ``--label-file`` ...; ``loss_options`` is ``--loss-option KEY=VALUE``)
    and a key of an experiment spec (``experiments/*.toml``).

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range (a boolean for a number),
            an unknown loss or threshold strategy, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data
    dataset: str = Field("yeast", description="Built-in dataset name (yeast) or a data file (see `evalkit datasets`).")
    test_dataset: str | None = Field(None, description="Test file; default: the standard split or a stratified split.")
    reader_options: ReaderOptions = Field(default_factory=dict, description="Reader options (label_file, label_columns, ...).")
    val_size: float = Field(0.2, gt=0, lt=1, description="Validation fraction of the training data (used with --folds 1).")
    test_size: float = Field(0.3, gt=0, lt=1, description="Test fraction of a stratified split when there is no test file.")
    standardize: bool = Field(True, description="Standardise features with the training split's mean and std.")
    # model: defaults chosen on yeast / emotions / scene (docs/concepts/training.md): one wide hidden
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
                                   "(default: the image side, at least 32); image tables: the side images are "
                                   "streamed at, for any model (default: the first image's shorter side, at most 224).")
    pretrained: bool = Field(False, description="Backbones: start from torchvision's ImageNet weights (its cache, "
                             "or downloaded); offline, use --weights FILE.")
    weights: str | None = Field(None, description="Backbones: a local state_dict file to start from (ImageNet "
                                "weights, or a backbone of the same labels).")
    freeze_backbone: bool = Field(False, description="Backbones: train the head only (see --unfreeze-after).")
    unfreeze_after: int | None = Field(None, ge=1, description="Backbones with --freeze-backbone: train the whole "
                                       "network after N epochs of the head alone.")
    # image tables (--dataset labels.csv --image-root DIR: evalkit.images.lazy, streamed batch by batch)
    workers: int | None = Field(None, ge=0, le=64, description="Image tables: DataLoader worker processes that "
                                "decode images (default: the available cores less one, at most 8; 0 = in this process).")
    augment: Literal["standard", "none"] = Field("standard", description="Image tables: training augmentation, "
                                                 "standard (random resized crop, horizontal flip) or none.")
    skip_bad_images: bool = Field(False, description="Image tables: leave out missing / unreadable images (counted "
                                  "in the report and the run tags) instead of stopping with exit 2.")
    resume: str | None = Field(None, description="Continue the killed run RUN_ID from its last epoch's checkpoint "
                               "(image runs checkpoint every epoch), with the run's own options.")
    # loss
    loss: str = Field("bce", description="bce, bce-pos-weight, soft-margin, margin, focal, asl (see `evalkit losses`).")
    loss_options: dict[str, _Number] = Field(default_factory=dict, description="Loss option KEY=VALUE, repeatable (e.g. gamma=2).")
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
        "auto", description="auto: --folds, --epochs and --batch-size, when not given, follow the data size (manual: "
        "Training defaults); off: their defaults as they are.")
    seed: int = Field(0, ge=0, lt=2**32, description="Random seed (splits, init, shuffling).")
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
    ci: float = _ci_fields("--seed")[0]
    ci_resamples: int = _ci_fields("--seed")[1]
    ci_method: Literal["percentile", "bca"] = _ci_fields("--seed")[2]
    # tracking / output
    experiment: str = Field("evalkit", description="MLflow experiment name.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")
    tracking_timeout: float = _tracking_timeout_field()
    run_name: str | None = Field(None, description="MLflow run name.")
    log_model: bool = Field(True, description="Log the model to MLflow.")
    log_class_metrics: bool = Field(False, description="Also log per-class metrics (test/class/<label>/<metric>) as MLflow "
                                    "metrics, for at most 100 labels; every label is always in the run's per_class table.")
    log_scores: bool = Field(True, description="Log the test scores (scores.parquet: row ids, targets, probabilities) "
                             "for row-by-row comparisons (evalkit compare RUN_A RUN_B).")
    register_model: str | None = Field(None, description="Register the logged model under NAME in the MLflow model registry.")
    alias: str | None = Field(None, description="Point this alias (e.g. champion) of --register NAME at the new version.")
    output: str | None = Field(None, description="Write the report JSON here.")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(h < 1 or h > MAX_WIDTH for h in v):
            raise ValueError(f"hidden layer sizes must lie in 1..{MAX_WIDTH}")
        return v

    @field_validator("lr", "weight_decay", "beta", "input_noise", "dropout", "val_size", "test_size", "tracking_timeout")
    @classmethod
    def _is_finite(cls, v: float) -> float:
        return _finite(v)

    _strict_numbers = field_validator("val_size", "test_size", "hidden", "dropout", "lr", "weight_decay", "epochs",
                                      "batch_size", "patience", "input_noise", "folds", "seed", "threads",
                                      "fold_processes", "beta", "tracking_timeout", "ci", "ci_resamples",
                                      mode="before")(_elementwise_not_bool)
    _given = field_validator("experiment", "dataset", "test_dataset", "weights", "resume", "tracking_uri", "run_name",
                             "register_model", "alias", "output")(_not_blank)

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, v: str) -> str:
        from evalkit.losses import get_loss_spec

        return _checked(get_loss_spec, v, "--loss: ")

    @field_validator("threshold")
    @classmethod
    def _known_threshold(cls, v: str) -> str:
        return _checked(threshold_strategy, v, "--threshold: ")

    @model_validator(mode="after")
    def _options_apply(self) -> "RunConfig":
        """Refuse options this run would ignore (InputError naming the flag and what it applies to)."""
        fields = type(self).model_fields
        if self.monitor == "none" and self.patience != fields["patience"].default:
            _refuse("patience", f"early stopping ({_f('monitor')} val_loss, val_map, ...)", f"{_f('monitor')} none")
        tuned = self.threshold_strategy.name in ("joint", "global", "per-class")
        if not tuned and self.objective != fields["objective"].default:
            _refuse("objective", f"tuned thresholds ({_f('threshold')} joint, global or per-class)",
                    f"{_f('threshold')} {self.threshold}")
        if self.folds == 1 and self.fold_processes not in (0, 1):
            _refuse("fold_processes", f"cross-fitting ({_f('folds')} 2 or more)", f"{_f('folds')} 1")
        return self

    @property
    def threshold_strategy(self):
        """``threshold`` parsed: the :class:`~evalkit.thresholds.ThresholdStrategy` every stage uses
        (validated with the config; ``threshold`` stays the text that params, specs and MLflow record)."""
        return threshold_strategy(self.threshold)

    @property
    def loss_settings(self) -> dict[str, float]:
        """``loss_options`` checked against ``loss`` and completed with its documented defaults
        (``{"alpha": 0.25, "gamma": 2.0}`` for focal): what the loss is built with and params record.

        Raises:
            InputError: ``--loss-option: ...`` an option the loss does not take, or a bad value.
        """
        from evalkit.losses import loss_options

        return loss_options(self.loss, self.loss_options)

    def with_budget(self, n_train: int, n_features: int, n_labels: int) -> "RunConfig":
        """This config with ``folds``, ``epochs`` and ``batch_size`` set by the training-budget rule
        (:func:`evalkit.budget.budget_update`; ``budget = "auto"``; fields given explicitly are kept).
        ``n_train``: rows of train + validation; ``n_features`` / ``n_labels``: F and C."""
        update = budget_update(self, n_train, n_features, n_labels) if self.budget == "auto" else {}
        return self.model_copy(update=update) if update else self

    def params(self) -> dict[str, Any]:
        """Flat params for tracking: every field but paths of outputs, ``hidden`` as ``"512,256"``,
        loss options as ``loss.<name>`` (with their defaults) and reader options as ``data.<name>``."""
        p = self.model_dump(exclude={"reader_options", "loss_options", "tracking_uri", "tracking_timeout", "output",
                                     "experiment", "run_name", "resume", "workers"})  # (--resume may change these)
        p["hidden"] = ",".join(map(str, self.hidden))
        for k, v in self.loss_settings.items():
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
    reader_options: ReaderOptions = Field(default_factory=dict, description="Reader options (label_file, label_columns, ...).")
    arch: str | None = Field(None, description="Architecture of a state_dict file: linear, mlp or cnn.")
    hidden: list[int] | None = Field(None, description="MLP hidden sizes of a state_dict file, e.g. 256 or 512,256.")
    trust_pickle: bool = Field(False, description="Allow loading a pickled model (runs code from the file: trusted files only).")
    preprocess: str | None = Field(None, description="preprocess.json of a model file (default: <model>.preprocess.json "
                                   "or preprocess.json next to it).")
    scores: Literal["logits", "probabilities"] = Field("logits", description="What --model outputs: logits or probabilities "
                                                       "(the model ends with a sigmoid).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="With --model: auto picks CUDA when available.")
    amp: Literal["bf16", "fp16"] | None = Field(None, description="With --model on CUDA: bf16 or fp16 autocast (ignored on CPU).")
    workers: int | None = Field(None, ge=0, le=64, description="With --model on an image table: DataLoader worker "
                                "processes (default: the available cores less one, at most 8).")
    skip_bad_images: bool = Field(False, description="With --model on an image table: skip missing or unreadable images (counted), not exit 2.")
    label_map: str | None = Field(None, description="CSV (source,target) or JSON {source: target} mapping the labels "
                                  "(of the model or the predictions file) to a coarser set.")
    map_reduce: Literal["max", "sum", "mean"] = Field("max", description="How --label-map combines source probabilities: "
                                                      "max, sum (clipped to 1) or mean.")
    # how
    threshold: str | None = Field(None, description="A cut in (0, 1), a comma list (one per label), or a JSON/CSV file of "
                                  "per-label cuts. Default 0.5; with --model: the thresholds its run chose.")
    beta: float = Field(2.0, gt=0, description="Beta of the reported F-beta.")
    threshold_free: Literal["exact", "streaming", "none"] = Field(
        "exact", description="exact (matches scikit-learn), streaming (O(C x bins) memory) or none.")
    ci: float = _ci_fields("0")[0]
    ci_resamples: int = _ci_fields("0")[1]
    ci_method: Literal["percentile", "bca"] = _ci_fields("0")[2]
    batch_size: int = Field(65536, ge=1, le=1 << 24, description="Rows read (or scored) per batch.")
    output: str | None = Field(None, description="Write the report JSON here.")
    per_class: str = Field("top", pattern=r"^(top|all|none|[1-9][0-9]*)$",
                           description="Per-class table: top (the labels with the largest support, at most "
                           "50 rows), all, none, or a row count N.")
    # gates
    gates: list[str] = Field(default_factory=list, description='Gate METRIC OP NUMBER (OP: >=, >, <=, <), repeatable, '
                             'e.g. "test/macro_f2>=0.55" or "ranking_loss<0.2" (aliases: lrap, map, exact_match, '
                             'hamming, ...); exit 1 when one fails.')
    baseline: str | None = Field(None, description="Baseline of --max-drop: last (last finished run of this --job), champion "
                                 "(run behind models:/NAME@champion), models:/NAME@ALIAS, or a run id (or its first 6+ digits).")
    max_drop: list[str] = Field(default_factory=list, description="Relative gate METRIC=AMOUNT: at most AMOUNT worse than the "
                                "baseline, repeatable, e.g. test/macro_f2=0.01; METRIC=significant: fails only on a "
                                "drop significant at --gate-alpha (paired bootstrap on the same rows).")
    gate_alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of METRIC=significant --max-drop gates.")
    # tracking
    trigger: Literal["manual", "scheduled"] = Field("manual", description="Tag evalkit.trigger of the MLflow run: manual or "
                                                    "scheduled (cron / CI).")
    job: str | None = Field(None, description="Job name (tag evalkit.job; --baseline last compares within it); default: the "
                            "predictions file name or the model.")
    experiment: str = Field("evalkit", description="MLflow experiment name.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")
    log_class_metrics: bool = Field(False, description="Also log per-class metrics (test/class/<label>/<metric>) as MLflow "
                                    "metrics, for at most 100 labels; every label is always in the run's per_class table.")
    track: bool = Field(True, description="Log the evaluation as an MLflow run.")
    log_scores: bool = Field(True, description="Log the scores (scores.parquet) with the run, for evalkit compare RUN_A RUN_B.")
    tracking_timeout: float = _tracking_timeout_field()

    @field_validator("beta", "tracking_timeout")
    @classmethod
    def _is_finite(cls, v: float) -> float:
        return _finite(v)

    _given = field_validator("experiment", "dataset", "test_dataset", "predictions", "model", "arch", "preprocess",
                             "label_map", "threshold", "output", "baseline", "job", "tracking_uri")(_not_blank)

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(h < 1 or h > MAX_WIDTH for h in v):
            raise ValueError(f"hidden layer sizes must lie in 1..{MAX_WIDTH}")
        return v

    @model_validator(mode="after")
    def _options_apply(self) -> "EvaluateJobConfig":
        """Refuse options the chosen mode would ignore (InputError naming the flag and the mode)."""
        refuse_unused(self, _f("predictions"), f"{_f('model')} evaluation",
                      _MODEL_ONLY if self.predictions is not None and self.model is None else ())
        if self.model is not None and self.model.startswith(("runs:/", "models:/")):
            refuse_unused(self, f"an MLflow model ({_f('model')} runs:/... or models:/...)", "a state_dict model file",
                          ("arch", "hidden"))
        if self.model is not None and self.dataset is not None and self.test_dataset is not None:
            _refuse("dataset", f"{_f('model')} without {_f('test_dataset')}",
                    f"{_f('test_dataset')} (the test file is evaluated whole)")
        if self.map_reduce != "max" and self.label_map is None:
            _refuse("map_reduce", _f("label_map"), "an evaluation without a label map")
        if self.trigger != "manual" and not self.track:
            _refuse("trigger", "a tracked run", _f("track", False))
        return self

    @property
    def job_name(self) -> str:
        """``job``, else the predictions file name, else the model spec."""
        from pathlib import Path

        if self.job:
            return self.job
        return Path(self.predictions).name if self.predictions else str(self.model)


#: EvaluateJobConfig fields that only ``--model`` evaluation reads (a predictions file holds scores)
_MODEL_ONLY = ("dataset", "test_dataset", "reader_options", "arch", "hidden", "trust_pickle", "preprocess", "scores",
               "device", "amp", "workers", "skip_bad_images")


def _f(field: str, switch: bool | None = None) -> str:
    """``field`` marked in a message: the CLI names it by its flag, a spec by its key (:func:`evalkit.errors.field_name`)."""
    from evalkit.errors import field_name

    return field_name(field, switch)


def _refuse(field: str, applies_to: str, not_to: str) -> None:
    from evalkit.errors import InputError

    raise InputError(f"{_f(field)}: applies to {applies_to}, not to {not_to}; drop it")


def refuse_unused(config: BaseModel, mode: str, applies_to: str, fields) -> None:
    """Raise InputError for the first of ``fields`` set to other than its default in ``config``: an
    option ``mode`` would silently ignore (``FIELD: applies to APPLIES_TO, not to MODE``, the field
    marked for naming; a reader option is named as itself)."""
    for field in fields:
        value, default = getattr(config, field), type(config).model_fields[field].get_default(call_default_factory=True)
        if value != default:
            _refuse(next(iter(value)) if field == "reader_options" else field, applies_to, mode)


DEFAULT_BETA: float = RunConfig.model_fields["beta"].default
DEFAULT_THRESHOLD_FREE: str = EvaluateJobConfig.model_fields["threshold_free"].default

from evalkit.config_executor import RAY_ONLY, ExecutorConfig, SearchConfig  # noqa: E402,F401  (re-exported)
