"""Calibration and the tagging threshold: temperature scaling, ECE, precision against coverage.

A photo is *tagged* when its top probability reaches the threshold. Precision is the share of
tags that are right, where a tag on a negative (a photo with no landmark) is always wrong;
coverage is the share of landmark photos that get a tag; recall the share tagged correctly.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (Guo et al.)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> dict:
    """Expected calibration error over equal-width confidence bins, with the bins themselves."""
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if low == 0:
            inside |= confidence == 0
        count = int(inside.sum())
        if count:
            accuracy, mean_conf = correct[inside].mean().item(), confidence[inside].mean().item()
            ece += count / len(labels) * abs(accuracy - mean_conf)
            rows.append({"low": float(low), "high": float(high), "count": count,
                         "accuracy": accuracy, "confidence": mean_conf})
    return {"ece": ece, "bins": rows}


def precision_coverage(probs: torch.Tensor, labels: torch.Tensor, negative_probs: torch.Tensor,
                       thresholds: torch.Tensor | None = None) -> list[dict]:
    """Precision, coverage, recall and the negatives' false-tag rate at each threshold."""
    if thresholds is None:
        thresholds = torch.linspace(0, 1, 201)
    confidence, predicted = probs.max(-1)
    correct = predicted == labels
    negative_conf = negative_probs.max(-1).values if len(negative_probs) else torch.zeros(0)
    curve = []
    for threshold in thresholds.tolist():
        tagged = confidence >= threshold
        right = int((tagged & correct).sum())
        false_negatives = int((negative_conf >= threshold).sum())
        tags = int(tagged.sum()) + false_negatives
        curve.append({
            "threshold": round(threshold, 4),
            "precision": right / tags if tags else 1.0,
            "coverage": int(tagged.sum()) / len(labels),
            "recall": right / len(labels),
            "negatives_tagged": false_negatives / len(negative_conf) if len(negative_conf) else 0.0,
        })
    return curve


def choose_threshold(curve: list[dict], min_precision: float = 0.97,
                     min_coverage: float = 0.5) -> dict:
    """Precision first: the lowest threshold whose precision reaches ``min_precision``.

    The lowest such threshold keeps the most photos tagged. If no threshold gets there, the one
    with the best precision among those still tagging ``min_coverage`` of the landmark photos
    (a model that tags nothing is no use either).
    """
    reaching = [row for row in curve if row["precision"] >= min_precision and row["coverage"] > 0]
    if reaching:
        return min(reaching, key=lambda row: row["threshold"])
    useful = [row for row in curve if row["coverage"] >= min_coverage] or curve
    return max(useful, key=lambda row: (row["precision"], row["coverage"]))
