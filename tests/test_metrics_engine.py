"""The metric engine against scikit-learn: every number of the report, on random and edge-case data."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    coverage_error,
    fbeta_score,
    hamming_loss,
    label_ranking_average_precision_score,
    label_ranking_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from evalkit.errors import InputError
from evalkit.metrics import MultilabelEngine, binarize, compute_metrics

AVERAGES = ("micro", "macro", "weighted", "samples")
TOL = 1e-9


def fkey(beta: float) -> str:
    return f"f{beta:g}"


def sklearn_reference(Y: np.ndarray, P: np.ndarray, thr, beta: float, zd: float) -> dict:
    """Every number of the report computed with scikit-learn (plus hand definitions for accuracy
    and for C = 1, where scikit-learn treats the data as binary)."""
    N, C = Y.shape
    thr = np.broadcast_to(np.asarray(thr, dtype=np.float64), (C,))
    pred = (P.astype(np.float64) >= thr).astype(int)
    Y = Y.astype(int)
    out: dict = {"summary": {}, "per_class": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = precision_recall_fscore_support(Y, pred, average=None, zero_division=zd, labels=list(range(C))) \
            if C > 1 else None
        for avg in AVERAGES:
            if C == 1 and avg == "samples":
                tp = (pred[:, 0] & Y[:, 0]).astype(float)
                pr = np.where(pred[:, 0] > 0, tp / np.maximum(pred[:, 0], 1), zd)
                rc = np.where(Y[:, 0] > 0, tp / np.maximum(Y[:, 0], 1), zd)
                d1 = Y[:, 0] + pred[:, 0]
                f1 = np.where(d1 > 0, 2 * tp / np.maximum(d1, 1), zd)
                db = beta**2 * Y[:, 0] + pred[:, 0]
                fb = np.where(db > 0, (1 + beta**2) * tp / np.where(db > 0, db, 1), zd)
                d = {"precision": pr.mean(), "recall": rc.mean(), "f1": f1.mean(), fkey(beta): fb.mean()}
            elif C == 1:
                p, r, f, _ = precision_recall_fscore_support(Y[:, 0], pred[:, 0], average="binary",
                                                             zero_division=zd, beta=1.0)
                fb = fbeta_score(Y[:, 0], pred[:, 0], beta=beta, average="binary", zero_division=zd)
                d = {"precision": p, "recall": r, "f1": f, fkey(beta): fb}
            else:
                p, r, f, _ = precision_recall_fscore_support(Y, pred, average=avg, zero_division=zd)
                fb = fbeta_score(Y, pred, beta=beta, average=avg, zero_division=zd)
                d = {"precision": p, "recall": r, "f1": f, fkey(beta): fb}
            out["summary"][avg] = d
        acc = ((pred == Y).sum(0)) / N
        sup = Y.sum(0)
        out["summary"]["micro"]["accuracy"] = float((pred == Y).mean())
        out["summary"]["macro"]["accuracy"] = float(acc.mean())
        out["summary"]["weighted"]["accuracy"] = float(np.average(acc, weights=sup) if sup.sum() else acc.mean())
        out["summary"]["samples"]["accuracy"] = float(((pred == Y).sum(1) / C).mean())
        if C > 1:
            out["summary"]["subset_accuracy"] = accuracy_score(Y, pred)
            out["summary"]["hamming_loss"] = hamming_loss(Y, pred)
        else:
            out["summary"]["subset_accuracy"] = float((pred == Y).mean())
            out["summary"]["hamming_loss"] = float((pred != Y).mean())
        aps, aucs = [], []
        for j in range(C):
            aps.append(average_precision_score(Y[:, j], P[:, j]) if Y[:, j].any() else 0.0)
            aucs.append(roc_auc_score(Y[:, j], P[:, j]) if 0 < Y[:, j].sum() < N else None)
        out["summary"]["mean_average_precision"] = float(np.mean(aps))
        valid = [a for a in aucs if a is not None]
        out["summary"]["macro_auroc"] = float(np.mean(valid)) if valid else None
        y, s = Y.ravel(), P.ravel()
        out["summary"]["micro_average_precision"] = average_precision_score(y, s) if y.any() else 0.0
        out["summary"]["micro_auroc"] = roc_auc_score(y, s) if 0 < y.sum() < y.size else None
        if C > 1:
            out["summary"]["label_ranking_average_precision"] = label_ranking_average_precision_score(Y, P)
            out["summary"]["coverage_error"] = coverage_error(Y, P)
            out["summary"]["label_ranking_loss"] = label_ranking_loss(Y, P)
        else:  # one label: every ranking is trivially perfect
            out["summary"]["label_ranking_average_precision"] = 1.0
            out["summary"]["coverage_error"] = float(Y[:, 0].mean())
            out["summary"]["label_ranking_loss"] = 0.0
        for j in range(C):
            tp = int(((pred[:, j] == 1) & (Y[:, j] == 1)).sum())
            fp = int(((pred[:, j] == 1) & (Y[:, j] == 0)).sum())
            fn = int(((pred[:, j] == 0) & (Y[:, j] == 1)).sum())
            tn = int(((pred[:, j] == 0) & (Y[:, j] == 0)).sum())
            if C > 1:
                p_, r_, f_ = pc[0][j], pc[1][j], pc[2][j]
                fb_ = fbeta_score(Y, pred, beta=beta, average=None, zero_division=zd)[j]
            else:
                p_, r_, f_ = (out["summary"]["micro"][k] for k in ("precision", "recall", "f1"))
                fb_ = out["summary"]["micro"][fkey(beta)]
            out["per_class"].append({"support": int(sup[j]), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
                                     "accuracy": float(acc[j]), "precision": p_, "recall": r_, "f1": f_,
                                     fkey(beta): fb_, "average_precision": aps[j], "auroc": aucs[j],
                                     "threshold": float(thr[j])})
    return out


def assert_close(got, want, tol=TOL, path="result"):
    if isinstance(want, dict):
        for k, v in want.items():
            assert k in got, f"{path}: missing key {k!r}"
            assert_close(got[k], v, tol, f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, tol, f"{path}[{i}]")
    elif want is None:
        assert got is None, f"{path}: expected None, got {got!r}"
    elif isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        assert got == want, f"{path}: {got!r} != {want!r}"
    else:
        assert got is not None and abs(got - float(want)) <= tol, f"{path}: {got!r} != {float(want)!r}"
