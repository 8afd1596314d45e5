"""Blocks found, not assumed: which rows link the model and which columns form each block.

Why a search: the ops LP is block-angular by region only once a few rows are set aside (the
company-wide budget, the availability rows of staff who may work anywhere, each stage's hold
row). Which rows those are is read from the matrix: every row gets a *span*, the number of
distinct values of a key shared by every column family (the site, for the ops model) among
its columns. For a span threshold k, the rows of span <= k form a graph over the columns
(scipy.sparse.csgraph); a row is *linking* when its columns fall in more than one component
of that graph. The threshold kept is the one giving the most sizeable blocks while the
linking rows stay under `max_link_share` (1%) of the rows (site-level blocks would link ~44% of
the rows on medium; region blocks link 0.17%). Stage hold rows are added as linking rows by
the master, not here: they span every column by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from allocator.core.model import LinearModel

MAX_LINK_SHARE = 0.01  # rows that may link before a threshold is refused (medium: 0.17%)
MIN_BLOCK_SHARE = 0.01  # components below this share of columns are packed into others
MAX_THRESHOLDS = 40  # span thresholds tried (geometrically spread over the spans seen)


@dataclass(frozen=True)
class Partition:
    """Linking rows, and each block's columns and rows (global indices, sorted)."""

    linking: np.ndarray  # row indices
    block_cols: tuple[np.ndarray, ...]
    block_rows: tuple[np.ndarray, ...]
    key: str  # the label the spans were counted in ("" = columns themselves)
    threshold: int  # rows of span <= threshold were kept inside blocks

    @property
    def sizes(self) -> list[int]:
        return [int(c.size) for c in self.block_cols]


def column_key(model: LinearModel) -> tuple[str, np.ndarray]:
    """One code per column from a label every variable family has: the one with the most
    distinct values (the finest shared grouping, so that a span counts places, not kinds:
    site_id rather than service_id in the ops model); ("", arange) when there is none."""
    shared: set[str] | None = None
    for block in model.var_blocks.values():
        names = set(block.labels.columns)
        shared = names if shared is None else shared & names
    best: tuple[int, str] | None = None
    for name in sorted(shared or ()):
        count = len(pd.unique(pd.concat([b.labels[name].astype(str)
                                         for b in model.var_blocks.values()])))
        if count > 1 and (best is None or count > best[0]):
            best = (count, name)
    if best is None:
        return "", np.arange(model.num_vars)
    name = best[1]
    text = np.concatenate([b.labels[name].astype(str).to_numpy(dtype=object)
                           for b in model.var_blocks.values()])
    codes, _ = pd.factorize(text)
    return name, codes.astype(np.int64)


def row_spans(matrix: sp.csr_array, key: np.ndarray) -> np.ndarray:
    """Distinct key values among each row's columns (vectorized: unique (row, key) pairs)."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    keys = key[matrix.indices]
    pairs = np.unique(rows.astype(np.int64) * (int(key.max()) + 1 if key.size else 1) + keys)
    width = int(key.max()) + 1 if key.size else 1
    return np.bincount(pairs // width, minlength=matrix.shape[0])


def _components(matrix: sp.csr_array, keep: np.ndarray) -> tuple[int, np.ndarray]:
    """Components of the columns joined by the kept rows (bipartite row-column graph)."""
    m, n = matrix.shape
    sub = matrix[np.flatnonzero(keep)]
    k = sub.shape[0]
    coo = sub.tocoo()
    graph = sp.coo_array((np.ones(coo.nnz, dtype=np.int8), (coo.row + n, coo.col)),
                         shape=(n + k, n + k))
    count, labels = connected_components(graph, directed=False)
    del m
    return count, labels[:n]


def _crossing(matrix: sp.csr_array, candidates: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Of the candidate rows, those whose columns lie in more than one component."""
    if candidates.size == 0:
        return candidates
    sub = matrix[candidates]
    labels = comp[sub.indices]
    starts = sub.indptr[:-1]
    lengths = np.diff(sub.indptr)
    nonempty = lengths > 0
    lo = np.full(candidates.size, -1)
    hi = np.full(candidates.size, -1)
    if labels.size:
        lo[nonempty] = np.minimum.reduceat(labels, starts[nonempty])
        hi[nonempty] = np.maximum.reduceat(labels, starts[nonempty])
    return candidates[lo != hi]


def _pack(sizes: np.ndarray, bins: int) -> np.ndarray:
    """Longest-processing-time packing: each item (largest first) to the lightest bin."""
    load = np.zeros(bins)
    out = np.empty(sizes.size, dtype=np.int64)
    for item in np.argsort(-sizes, kind="stable"):
        target = int(np.argmin(load))
        out[item] = target
        load[target] += sizes[item]
    return out


def find_blocks(model: LinearModel, max_link_share: float = MAX_LINK_SHARE,
                min_block_share: float = MIN_BLOCK_SHARE) -> Partition:
    """The partition with the most sizeable blocks whose linking rows stay under the share."""
    matrix = model.matrix
    m, n = matrix.shape
    key_name, key = column_key(model)
    spans = row_spans(matrix, key) if m else np.zeros(0, dtype=np.int64)
    values = np.unique(spans[spans > 1])
    if values.size > MAX_THRESHOLDS:
        picks = np.unique(np.geomspace(1, values.size, MAX_THRESHOLDS).astype(int) - 1)
        values = values[picks]
    best: tuple[tuple[int, int], int, np.ndarray, np.ndarray] | None = None
    limit = max(1, int(max_link_share * m))
    for threshold in [int(values.max()) if values.size else 1, *values[::-1].tolist(), 1]:
        keep = spans <= threshold
        _, comp = _components(matrix, keep)
        linking = _crossing(matrix, np.flatnonzero(~keep), comp)
        if linking.size > limit and best is not None:
            break  # lower thresholds only link more rows
        sizes = np.bincount(comp)
        sizeable = int(np.count_nonzero(sizes >= max(1, min_block_share * n)))
        score = (sizeable, -linking.size)
        if best is None or score > best[0]:
            best = (score, int(threshold), comp, linking)
    assert best is not None
    _, threshold, comp, linking = best
    sizes = np.bincount(comp).astype(float)
    bins = max(1, int(np.count_nonzero(sizes >= max(1, min_block_share * n))))
    block_of_comp = _pack(sizes, bins)
    block_of_col = block_of_comp[comp]
    is_link = np.zeros(m, dtype=bool)
    is_link[linking] = True
    # A block row's columns all lie in one component, so in one block: its first column says.
    first_col = matrix.indices[matrix.indptr[:-1].clip(max=max(matrix.nnz - 1, 0))] \
        if matrix.nnz else np.zeros(m, dtype=np.int64)
    empty = np.diff(matrix.indptr) == 0
    row_block = np.where(empty, -1, block_of_col[first_col])
    cols = tuple(np.flatnonzero(block_of_col == b) for b in range(bins))
    rows = tuple(np.flatnonzero((row_block == b) & ~is_link) for b in range(bins))
    return Partition(np.flatnonzero(is_link & ~empty), cols, rows, key_name, threshold)


def pack_blocks(partition: Partition, model: LinearModel, workers: int) -> list[list[int]]:
    """Blocks onto workers by their nonzeros (LPT): each worker's list of block indices."""
    lengths = np.diff(model.matrix.tocsc().indptr)
    weights = np.array([float(lengths[c].sum()) + c.size for c in partition.block_cols])
    owner = _pack(weights, max(1, min(workers, len(weights))))
    return [np.flatnonzero(owner == w).tolist() for w in range(int(owner.max()) + 1)]
