"""Scores of a ranking or a grouping against the truth: precision, recall, mAP, pairs grouped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

BLOCK = 256  # queries scored at a time: bounds the similarity matrix and its sort
THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))  # 0.80 ... 0.99


def ranked_relevance(sims: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """Sort each query's gallery by falling similarity; tell which results share the query's label."""
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.asarray(gallery_labels[order] == query_labels[:, None])


def precision_at(relevant: np.ndarray, k: int) -> np.ndarray:
    """Return each query's share of relevant results among its first k."""
    return np.asarray(relevant[:, :k].sum(axis=1) / k)


def hit_at(relevant: np.ndarray, k: int) -> np.ndarray:
    """Return, per query, whether a relevant result is among its first k (recall@k)."""
    return np.asarray(relevant[:, :k].any(axis=1))


def average_precision(relevant: np.ndarray) -> np.ndarray:
    """Return each query's average precision over its whole ranking (0 if nothing is relevant)."""
    precision = np.cumsum(relevant, axis=1) / np.arange(1, relevant.shape[1] + 1)
    total = relevant.sum(axis=1)
    return np.asarray((precision * relevant).sum(axis=1) / np.maximum(total, 1))


def leave_one_out(vectors: np.ndarray, labels: np.ndarray, ks: Iterable[int]) -> tuple[int, dict[str, float]]:
    """Query with every image whose class has another one, against all the others; average the scores."""
    queries = np.flatnonzero(np.bincount(labels)[labels] > 1)
    sums: dict[str, float] = defaultdict(float)
    for start in range(0, len(queries), BLOCK):
        rows = queries[start : start + BLOCK]
        sims = vectors[rows] @ vectors.T
        sims[np.arange(len(rows)), rows] = -np.inf  # the query itself sorts last, and is cut off
        relevant = ranked_relevance(sims, labels[rows], labels)[:, :-1]
        sums["precision@1"] += float(precision_at(relevant, 1).sum())
        sums["precision@10"] += float(precision_at(relevant, 10).sum())
        sums["mAP"] += float(average_precision(relevant).sum())
        for k in ks:
            sums[f"recall@{k}"] += float(hit_at(relevant, k).sum())
    return len(queries), {name: total / max(len(queries), 1) for name, total in sums.items()}


def target_ranks(sims: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Return, per query, how many gallery items score above its target (0: the target comes first)."""
    scores = sims[np.arange(len(targets)), targets]
    return np.asarray((sims > scores[:, None]).sum(axis=1))


def rank_targets(queries: np.ndarray, gallery: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Return where each query's target ranks in the gallery by cosine similarity, a block at a time."""
    ranks = np.zeros(len(targets), np.int64)
    for start in range(0, len(targets), BLOCK):
        end = start + BLOCK
        ranks[start:end] = target_ranks(queries[start:end] @ gallery.T, targets[start:end])
    return ranks


def components(sims: np.ndarray, threshold: float) -> np.ndarray:
    """Return a group label per image: images joined by any chain of pairs at least ``threshold`` alike."""
    first, second = np.nonzero(np.triu(sims >= threshold, k=1))
    return joined(len(sims), first, second)


def joined(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return a group label per image of ``n``: images joined by any chain of the pairs (first[i], second[i])."""
    parent = np.arange(n)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    for a, b in zip(first, second, strict=True):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)])


def _pairs(labels: np.ndarray) -> int:
    counts = np.unique(labels, return_counts=True)[1]
    return int(np.sum(counts * (counts - 1) // 2))


def group_scores(sims: np.ndarray, origins: np.ndarray, threshold: float) -> dict[str, float]:
    """Score the groups formed at ``threshold`` against the true ones, over pairs of images.

    precision: of the pairs put in one group, the share that are copies of one photo; recall: of
    the pairs of copies of one photo, the share put in one group.
    """
    return scores_of(components(sims, threshold), origins)


def scores_of(groups: np.ndarray, origins: np.ndarray) -> dict[str, float]:
    """Score groups (a label per image) against the true ones (``origins``), over pairs of images."""
    predicted, true = _pairs(groups), _pairs(origins)
    both = _pairs(groups * (int(origins.max()) + 1) + origins)  # pairs sharing a group and an origin
    precision = both / predicted if predicted else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    sizes = np.unique(groups, return_counts=True)[1]
    return {"precision": precision, "recall": recall, "f1": f1, "groups": float(np.sum(sizes > 1))}


def suggest_threshold(scores: dict[str, dict[str, float]]) -> str:
    """Return the row of the threshold whose groups score the best F1 (the lower one on a tie)."""
    rows = sorted(row for row in scores if row.startswith("t="))
    return max(rows, key=lambda row: (round(scores[row]["f1"], 6), -float(row[2:])))


def most_precise(scores: dict[str, dict[str, float]], min_precision: float = 0.99) -> str | None:
    """Return the row of the lowest threshold whose groups are at least ``min_precision`` precise."""
    rows = sorted(row for row in scores if row.startswith("t=") and scores[row]["precision"] >= min_precision)
    return rows[0] if rows else None
