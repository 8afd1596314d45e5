"""What moves with one unit of a right-hand side that also bounds columns (core.RhsLinks).

A formulation declares such rows on its model (the ops model: a person's FTE is their
availability row's right-hand side and also the upper bound of their assignment columns);
the sensitivity and the ladders read this structure and never one model's block names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from allocator.core.model import LinearModel


@dataclass
class LinkedBounds:
    """What moves with row k's value `a_k`, per row of the declared block (CSR-like).

    `a_k` is the row's right-hand side, but also the upper bound of each of its columns (and
    of the parallel blocks' columns), and (whole mode, with the decision column fixed at 1)
    the limit of the link rows. Those bounds are implied by the row (x >= 0, down <= x0 in
    the ops model), so relaxing them leaves the feasible set as it is: then the row's
    right-hand side alone carries the value, and its price is the value of one more unit.
    """

    rows: np.ndarray  # global row index of each declared row
    col_ptr: np.ndarray  # cols[col_ptr[k]:col_ptr[k+1]]: bounds that follow row k's value
    cols: np.ndarray
    link_ptr: np.ndarray  # link_rows[...]: link rows of row k
    link_rows: np.ndarray
    link_z: np.ndarray  # the decision column of each of those rows


def linked_bounds(model: LinearModel) -> LinkedBounds | None:
    """The linked bounds the model declares (model.rhs_links), None if it declares none."""
    spec = model.rhs_links
    if spec is None:
        return None
    block, x = model.con_blocks.get(spec.rows), model.var_blocks.get(spec.cols)
    if block is None or x is None:
        return None
    sub = model.matrix[block.start:block.start + block.size]
    sub = sp.csr_array(sub)
    sub.sort_indices()
    xcols = sub.indices.astype(np.int64)
    counts = np.diff(sub.indptr)
    parallel = [p for p in (model.var_blocks.get(name) for name in spec.parallel)
                if p is not None]
    if parallel:
        per = np.repeat(np.arange(block.size), counts)
        cols = np.concatenate([xcols] + [p.start + (xcols - x.start) for p in parallel])
        order = np.argsort(np.tile(per, 1 + len(parallel)), kind="stable")
        cols = cols[order]
        counts = (1 + len(parallel)) * counts
    else:
        cols = xcols
    col_ptr = np.concatenate([[0], np.cumsum(counts)])
    link = model.con_blocks.get(spec.link_rows) if spec.link_rows else None
    z = model.var_blocks.get(spec.link_cols) if spec.link_cols else None
    if link is None or z is None:
        empty = np.zeros(0, dtype=np.int64)
        return LinkedBounds(block.start + np.arange(block.size), col_ptr, cols,
                            np.zeros(block.size + 1, dtype=np.int64), empty, empty)
    # link row j belongs to column j of `cols`; its decision column is its entry outside it.
    links = sp.csr_array(model.matrix[link.start:link.start + link.size])
    zcol = np.full(link.size, -1, dtype=np.int64)
    rows_of = np.repeat(np.arange(link.size), np.diff(links.indptr))
    is_z = links.indices >= z.start
    zcol[rows_of[is_z]] = links.indices[is_z]
    link_rows = link.start + (xcols - x.start)
    link_ptr = np.concatenate([[0], np.cumsum(np.diff(sub.indptr))])
    return LinkedBounds(block.start + np.arange(block.size), col_ptr, cols, link_ptr,
                        link_rows, zcol[xcols - x.start])
