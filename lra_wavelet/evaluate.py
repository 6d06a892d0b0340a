"""Metrics (scikit-learn for classification) and the steps-to-match measurement of DESIGN §7.2."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score  # here: scikit-learn takes a second to import

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0)),
    }


def lm_metrics(loss_nats: float) -> dict:
    """Next-token NLL in nats/token, bits/token (= bits per character on character corpora), perplexity."""
    return {"loss": loss_nats, "bits_per_token": loss_nats / math.log(2), "perplexity": math.exp(min(loss_nats, 50))}


def steps_to_match(base_steps, base_loss, cand_steps, cand_loss, base_wall=None, cand_wall=None) -> dict:
    """Compare a candidate validation curve with a baseline's.

    target            the baseline's final validation loss
    steps_to_match    first evaluated step at which the candidate's loss <= target (None: never)
    speedup_steps     baseline's final step / steps_to_match
    speedup_wall      baseline's final wall time / candidate's wall time at steps_to_match (when given)
    loss_gain         relative loss reduction at the baseline's final step: (base - cand) / base,
                      the candidate's loss taken at the same step (nearest evaluated step not after it)
    """
    bs, bl = np.asarray(base_steps), np.asarray(base_loss, dtype=float)
    cs, cl = np.asarray(cand_steps), np.asarray(cand_loss, dtype=float)
    if len(bs) == 0 or len(cs) == 0:
        raise ValueError("both curves need at least one point")
    ob, oc = np.argsort(bs), np.argsort(cs)
    bs, bl, cs, cl = bs[ob], bl[ob], cs[oc], cl[oc]
    target, final_step = float(bl[-1]), int(bs[-1])
    hit = np.nonzero(cl <= target)[0]
    match: Optional[int] = int(cs[hit[0]]) if len(hit) else None
    out = {"target": target, "base_final_step": final_step, "steps_to_match": match,
           "speedup_steps": (final_step / match) if match else None, "speedup_wall": None}
    if match is not None and base_wall is not None and cand_wall is not None:
        bw, cw = np.asarray(base_wall, dtype=float)[ob], np.asarray(cand_wall, dtype=float)[oc]
        out["speedup_wall"] = float(bw[-1] / cw[hit[0]]) if cw[hit[0]] > 0 else None
    at = np.nonzero(cs <= final_step)[0]
    cand_at = float(cl[at[-1]]) if len(at) else float("nan")
    out["cand_loss_at_base_final"] = cand_at
    out["loss_gain"] = (target - cand_at) / target if target else float("nan")
    return out
