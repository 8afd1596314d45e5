"""The solver-neutral model: labeled blocks of variables and constraints over sparse arrays.

A block is one family (``x``, ``coverage``...) keyed by a DataFrame of the ids it came from,
so that results map back to the input without parsing names. Terms are given as whole arrays
(row, column, value) per block; nothing here creates a Python object per term.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

INF = np.inf

INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class VarBlock:
    name: str
    labels: pd.DataFrame  # one row per variable, columns = the ids it is keyed by
    start: int
    size: int
    integer: bool = False

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True)
class ConBlock:
    name: str
    labels: pd.DataFrame
    start: int
    size: int
    description: str = ""

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True)
class RhsLinks:
    """Declares rows whose right-hand side also moves some column bounds and link rows.

    The ops model's availability row of a person holds their FTE, and the same FTE is the
    upper bound of each of their `x` columns (and of the parallel `moved_up` columns), and
    (whole mode) the limit of their `whole_link` rows. The analyses price "one more unit of
    this right-hand side" by moving all of these together (analysis.links); the model says
    which blocks they are, so that no analysis needs to know one model's names.
    """

    rows: str  # the row block whose right-hand side is the input (e.g. "availability")
    cols: str  # the column block whose columns sit in those rows (e.g. "x")
    parallel: tuple[str, ...] = ()  # blocks laid out as `cols`, bounded by the same value
    link_rows: str | None = None  # one row per `cols` column whose limit follows the value
    link_cols: str | None = None  # the decision column of each of those rows (e.g. "assign")


@dataclass
class Objective:
    """One stage's objective: minimize ``c @ x + constant``."""

    name: str
    c: np.ndarray
    constant: float = 0.0


@dataclass
class LinearModel:
    """Rows ``lo <= A x <= hi``, bounds ``lb <= x <= ub``, and named objectives (stages)."""

    name: str = "model"
    maximize: bool = False  # objectives are always stored minimized; this only tells readers
    var_blocks: dict[str, VarBlock] = field(default_factory=dict)
    con_blocks: dict[str, ConBlock] = field(default_factory=dict)
    objectives: dict[str, Objective] = field(default_factory=dict)
    _lb: list[np.ndarray] = field(default_factory=list)
    _ub: list[np.ndarray] = field(default_factory=list)
    _int: list[np.ndarray] = field(default_factory=list)
    _rows: list[np.ndarray] = field(default_factory=list)
    _cols: list[np.ndarray] = field(default_factory=list)
    _vals: list[np.ndarray] = field(default_factory=list)
    _lo: list[np.ndarray] = field(default_factory=list)
    _hi: list[np.ndarray] = field(default_factory=list)
    num_vars: int = 0
    num_rows: int = 0
    _matrix: sp.csr_array | None = None
    rhs_links: RhsLinks | None = None  # see RhsLinks: set by formulations that have such rows

    # -- building ---------------------------------------------------------------------------
    def _restore_terms(self) -> None:
        """The terms were released into the CSR; bring them back before the model grows."""
        if self._matrix is not None and not self._rows and self._matrix.nnz:
            coo = self._matrix.tocoo()
            self._rows.append(coo.row.astype(np.int64))
            self._cols.append(coo.col.astype(np.int64))
            self._vals.append(coo.data)

    def add_variables(
        self, name: str, labels: pd.DataFrame, lb: float | np.ndarray = 0.0,
        ub: float | np.ndarray = INF, integer: bool | np.ndarray = False,
    ) -> VarBlock:
        if name in self.var_blocks:
            raise ValueError(f"variable block {name!r} exists")
        size = len(labels)
        self._restore_terms()
        is_int = np.broadcast_to(np.asarray(integer, dtype=bool), (size,)).copy()
        block = VarBlock(name, labels.reset_index(drop=True), self.num_vars, size,
                         bool(is_int.any()))
        self._lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (size,)).copy())
        self._ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (size,)).copy())
        self._int.append(is_int)
        self.var_blocks[name] = block
        self.num_vars += size
        self._matrix = None
        return block

    def add_constraints(
        self, name: str, labels: pd.DataFrame, rows: np.ndarray, cols: np.ndarray,
        vals: np.ndarray, lo: float | np.ndarray = -INF, hi: float | np.ndarray = INF,
        description: str = "",
    ) -> ConBlock:
        """Add one family: term k puts ``vals[k]`` at block row ``rows[k]``, column ``cols[k]``."""
        if name in self.con_blocks:
            raise ValueError(f"constraint block {name!r} exists")
        size = len(labels)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= size):
            raise ValueError(f"{name}: row index outside the block")
        block = ConBlock(name, labels.reset_index(drop=True), self.num_rows, size, description)
        self._restore_terms()
        # Terms are kept in int32 where the model allows (HiGHS's own index type): half the
        # memory of int64 while the model is built, and no conversion at assembly.
        row_type = np.int32 if self.num_rows + size < INT32_LIMIT else np.int64
        col_type = np.int32 if self.num_vars < INT32_LIMIT else np.int64
        self._rows.append((rows + self.num_rows).astype(row_type, copy=False))
        self._cols.append(np.asarray(cols).astype(col_type, copy=False))
        self._vals.append(np.asarray(vals, dtype=float))
        self._lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (size,)).copy())
        self._hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (size,)).copy())
        self.con_blocks[name] = block
        self.num_rows += size
        self._matrix = None
        return block

    def set_objective(self, name: str, terms: dict[str, np.ndarray], constant: float = 0.0) -> None:
        """Stage objective from per-block coefficient arrays (blocks not named get zero)."""
        c = np.zeros(self.num_vars)
        for block_name, coef in terms.items():
            c[self.var_blocks[block_name].slice] = coef
        self.objectives[name] = Objective(name, c, constant)

    # -- reading ----------------------------------------------------------------------------
    @property
    def lb(self) -> np.ndarray:
        return np.concatenate(self._lb) if self._lb else np.zeros(0)

    @property
    def ub(self) -> np.ndarray:
        return np.concatenate(self._ub) if self._ub else np.zeros(0)

    @property
    def integer(self) -> np.ndarray:
        return np.concatenate(self._int) if self._int else np.zeros(0, dtype=bool)

    @property
    def row_lo(self) -> np.ndarray:
        return np.concatenate(self._lo) if self._lo else np.zeros(0)

    @property
    def row_hi(self) -> np.ndarray:
        return np.concatenate(self._hi) if self._hi else np.zeros(0)

    @property
    def matrix(self) -> sp.csr_array:
        """The constraint matrix in CSR form, built once (duplicates summed).

        Peak memory matters here (the model's largest arrays): the per-block term arrays are
        moved into one preallocated array each and released block by block, so the terms
        exist about once, not twice, before the CSR is made from them.
        """
        if self._matrix is None:
            total = sum(part.size for part in self._vals)
            small = max(self.num_rows, self.num_vars, total) < INT32_LIMIT
            index_type = np.int32 if small else np.int64  # int32: HiGHS takes it without a copy
            rows = _drain(self._rows, total, index_type)
            cols = _drain(self._cols, total, index_type)
            vals = _drain(self._vals, total, np.float64)
            coo = sp.coo_array((vals, (rows, cols)), shape=(self.num_rows, self.num_vars))
            del rows, cols, vals
            csr = coo.tocsr()  # sums duplicate entries
            del coo
            csr.eliminate_zeros()
            self._matrix = csr
        return self._matrix

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    @property
    def num_integer(self) -> int:
        return int(self.integer.sum())

    def size(self) -> dict[str, int]:
        return {"rows": self.num_rows, "columns": self.num_vars, "nonzeros": self.nnz,
                "integer_columns": self.num_integer}

    def block_values(self, name: str, x: np.ndarray, column: str = "value") -> pd.DataFrame:
        """A variable block's values as a table keyed by its labels."""
        block = self.var_blocks[name]
        frame = block.labels.copy()
        frame[column] = x[block.slice]
        return frame

    def row_block_values(self, name: str, y: np.ndarray, column: str) -> pd.DataFrame:
        block = self.con_blocks[name]
        frame = block.labels.copy()
        frame[column] = y[block.slice]
        return frame

    def column_names(self) -> list[str]:
        """Readable, unique column names (for MPS files and solvers that want names)."""
        return _names(self.var_blocks.values())

    def row_names(self) -> list[str]:
        return _names(self.con_blocks.values())


def _drain(parts: list[np.ndarray], total: int, dtype: type) -> np.ndarray:
    """Concatenate `parts` into one array, emptying the list as it goes (one copy at a time)."""
    out: np.ndarray = np.empty(total, dtype=dtype)
    at = 0
    while parts:
        part = parts.pop(0)
        out[at:at + part.size] = part
        at += part.size
        del part
    return out


def _column_text(series: pd.Series) -> np.ndarray:
    """A label column as an object array of str, mapping categories once (not per row)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = np.asarray(series.cat.categories.astype(str), dtype=object)
        codes = series.cat.codes.to_numpy()
        return np.where(codes >= 0, categories[np.maximum(codes, 0)], "")
    return series.astype(str).to_numpy(dtype=object)


def join_labels(frame: pd.DataFrame, sep: str = "/") -> np.ndarray:
    """Row labels like ``Leeds/picking``: vectorized, because row-wise pandas joins take
    minutes on million-row blocks."""
    if frame.shape[1] == 0:
        return np.full(len(frame), "", dtype=object)
    out = _column_text(frame.iloc[:, 0])
    for col in frame.columns[1:]:
        out = out + sep + _column_text(frame[col])
    return out


def _names(blocks: Iterable[VarBlock | ConBlock]) -> list[str]:
    names: list[str] = []
    for block in blocks:
        if block.labels.shape[1] == 0:
            names.extend(f"{block.name}[{i}]" for i in range(block.size))
            continue
        joined = pd.Series(join_labels(block.labels, ","))
        names.extend((f"{block.name}[" + joined + "]").str.replace(" ", "_").tolist())
    return names
