"""Unit tests of the model core, the `--set` parser and the linked bounds: in-process and
fast, each against a hand-written answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator.analysis.links import linked_bounds
from allocator.core.model import LinearModel, RhsLinks
from allocator.errors import InputError
from allocator.scenario import apply_overrides, load_scenario
from tests.conftest import TINY


def two_by_two() -> LinearModel:
    """x0 + 2 x1 <= 4 (row r0), 3 x0 >= 1 (row r1); a duplicate term sums."""
    m = LinearModel("t")
    m.add_variables("x", pd.DataFrame({"id": ["a", "b"]}), lb=0.0, ub=[5.0, np.inf])
    m.add_constraints("r", pd.DataFrame({"name": ["r0", "r1"]}),
                      rows=np.array([0, 0, 0, 1]), cols=np.array([0, 1, 1, 0]),
                      vals=np.array([1.0, 1.0, 1.0, 3.0]), lo=[-np.inf, 1.0],
                      hi=[4.0, np.inf])
    m.set_objective("cost", {"x": np.array([1.0, 2.0])}, constant=0.5)
    return m


def test_matrix_sums_duplicates_and_keeps_bounds() -> None:
    m = two_by_two()
    assert m.matrix.toarray().tolist() == [[1.0, 2.0], [3.0, 0.0]]
    assert m.nnz == 3 and m.size() == {"rows": 2, "columns": 2, "nonzeros": 3,
                                       "integer_columns": 0}
    assert m.ub.tolist() == [5.0, np.inf] and m.row_lo.tolist() == [-np.inf, 1.0]
    assert m.objectives["cost"].c.tolist() == [1.0, 2.0]
    assert m.objectives["cost"].constant == 0.5


def test_model_grows_after_its_matrix_was_built() -> None:
    """The terms move into the CSR when it is built; a block added later keeps them all."""
    m = two_by_two()
    assert m.nnz == 3
    y = m.add_variables("y", pd.DataFrame({"id": ["c"]}), integer=True)
    m.add_constraints("s", pd.DataFrame({"name": ["s0"]}), rows=np.array([0, 0]),
                      cols=np.array([0, y.start]), vals=np.array([1.0, -1.0]), hi=0.0)
    assert m.matrix.toarray().tolist() == [[1, 2, 0], [3, 0, 0], [1, 0, -1]]
    assert m.num_integer == 1 and m.integer.tolist() == [False, False, True]


def test_blocks_refuse_duplicates_and_rows_outside() -> None:
    m = two_by_two()
    with pytest.raises(ValueError, match="exists"):
        m.add_variables("x", pd.DataFrame({"id": ["z"]}))
    with pytest.raises(ValueError, match="outside the block"):
        m.add_constraints("bad", pd.DataFrame({"n": ["only"]}), rows=np.array([1]),
                          cols=np.array([0]), vals=np.array([1.0]))


def test_block_values_and_names() -> None:
    m = two_by_two()
    frame = m.block_values("x", np.array([0.25, 1.5]))
    assert frame.to_dict("list") == {"id": ["a", "b"], "value": [0.25, 1.5]}
    assert len(set(m.column_names())) == 2 and len(set(m.row_names())) == 2


def test_linked_bounds_follow_the_declared_blocks() -> None:
    """Person p0 works columns 0, 2; p1 column 1; a parallel block mirrors the columns."""
    m = LinearModel("links")
    x = m.add_variables("x", pd.DataFrame({"k": [0, 1, 2]}), ub=[1.0, 2.0, 1.0])
    up = m.add_variables("up", pd.DataFrame({"k": [0, 1, 2]}))
    m.add_constraints("avail", pd.DataFrame({"p": ["p0", "p1"]}), rows=np.array([0, 1, 0]),
                      cols=np.array([0, 1, 2]), vals=np.ones(3), hi=[1.0, 2.0])
    assert linked_bounds(m) is None  # nothing declared: nothing linked
    m.rhs_links = RhsLinks("avail", "x", ("up",))
    links = linked_bounds(m)
    assert links is not None
    assert links.rows.tolist() == [0, 1]
    per_person = [sorted(links.cols[links.col_ptr[k]:links.col_ptr[k + 1]].tolist())
                  for k in range(2)]
    assert per_person == [[x.start, x.start + 2, up.start, up.start + 2],
                          [x.start + 1, up.start + 1]]
    assert links.link_rows.size == 0


def test_set_parser_reads_toml_values_and_nests_sections() -> None:
    raw = apply_overrides({"solver": {"name": "highs"}},
                          ["solver.time_limit=30", "policy.assignment=whole",
                           "output.formats=[\"csv\", \"parquet\"]", "output.report=false",
                           "solver.options.presolve=\"off\""], "x.toml")
    assert raw["solver"] == {"name": "highs", "time_limit": 30,
                             "options": {"presolve": "off"}}
    assert raw["policy"] == {"assignment": "whole"}
    assert raw["output"] == {"formats": ["csv", "parquet"], "report": False}


def test_set_parser_reports_every_bad_item_at_once() -> None:
    with pytest.raises(InputError) as caught:
        apply_overrides({"solver": "highs"}, ["novalue", "=3", "solver.x=1"], "x.toml")
    text = str(caught.value)
    assert "'novalue': expected KEY=VALUE" in text and "'=3': expected KEY=VALUE" in text
    assert "'solver' is not a section" in text


def test_set_unknown_key_is_blamed_on_the_set_with_a_suggestion() -> None:
    with pytest.raises(InputError) as caught:
        load_scenario(TINY, ["solver.time_limt=5"])
    text = str(caught.value)
    assert "--set solver.time_limt=5" in text and "did you mean 'time_limit'" in text


def test_mip_gap_unset_is_the_solvers_default() -> None:
    from allocator.run import settings_from

    assert settings_from(load_scenario(TINY)).mip_gap is None
    assert settings_from(load_scenario(TINY, ["solver.mip_gap=0.01"])).mip_gap == 0.01
