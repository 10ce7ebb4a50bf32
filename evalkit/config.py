"""Experiment specification: one pydantic model shared by CLI flags, TOML specs and the Python API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RunConfig(BaseModel):
    """Everything that defines one ``evalkit run``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data
    dataset: str = "yeast"
    test_dataset: str | None = None
    reader_options: dict[str, Any] = Field(default_factory=dict)
    val_size: float = Field(0.2, gt=0, lt=1)
    test_size: float = Field(0.3, gt=0, lt=1)
    standardize: bool = True
    # model
    model: str = "mlp"
    # defaults chosen on yeast / emotions / scene (README "evalkit run"): one wide hidden layer with
    # strong dropout and Gaussian input noise, early-stopped on validation mAP
    hidden: list[int] = Field(default_factory=lambda: [1024])
    dropout: float = Field(0.5, ge=0, lt=1)
    activation: str = "relu"
    batch_norm: bool = False
    # loss
    loss: str = "bce"
    loss_options: dict[str, float] = Field(default_factory=dict)
    # training
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    epochs: int = Field(150, ge=1)
    batch_size: int = Field(64, ge=1)
    patience: int = Field(15, ge=1)
    monitor: Literal["val_loss", "val_map", "val_micro_f2", "val_macro_f2", "none"] = "val_map"
    input_noise: float = Field(0.8, ge=0)  # std of Gaussian noise added to standardised train features
    # cross-fitting: 1 = train once, tune thresholds on the validation split; K > 1 = K models on K
    # folds of train + validation, thresholds tuned on their out-of-fold scores, test scored by the
    # mean of the K models' probabilities
    folds: int = Field(5, ge=1, le=20)
    seed: int = 0
    device: str = "auto"
    # CPU threads for torch: evalkit's MLPs are small, so one thread is fastest, and much faster
    # than several when the cores are shared (measured 5 s vs 150 s for 30 yeast epochs under load)
    threads: int = Field(1, ge=1)
    # evaluation
    threshold: str = "joint"  # see evalkit.thresholds.STRATEGIES
    objective: Literal["micro-fbeta", "macro-fbeta", "mean-fbeta"] = "mean-fbeta"  # what global (and per-class fallback) tuning maximises
    beta: float = Field(2.0, gt=0)
    # tracking / output
    experiment: str = "evalkit"
    tracking_uri: str | None = None
    run_name: str | None = None
    log_model: bool = True
    register_model: str | None = None  # --register: register the logged model under this name in the MLflow model registry
    alias: str | None = None  # and point this alias (e.g. champion) at the new version
    output: str | None = None

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError("hidden layer sizes must be positive")
        return v

    def params(self) -> dict[str, Any]:
        """Flat params for tracking (loss options as ``loss.<name>``)."""
        from evalkit.losses import loss_options

        p = self.model_dump(exclude={"reader_options", "loss_options", "tracking_uri", "output", "experiment", "run_name"})
        p["hidden"] = ",".join(map(str, self.hidden))
        for k, v in loss_options(self.loss, self.loss_options).items():
            p[f"loss.{k}"] = v
        for k, v in self.reader_options.items():
            p[f"data.{k}"] = v
        return p
