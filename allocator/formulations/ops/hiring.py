"""Where to hire, including people who do not exist yet (hiring.csv).

For every site and skill that the site's targets can use, the value of one more FTE hired
there: a new staff member (mobility `site`, no travel) at an assumed cost per FTE.

The hire is a new column per service of that skill at the site, with its coverage,
capacity, minimum-staffing and budget coefficients, and a new availability row holding its
FTE. Priced at the stage's optimal duals (its reduced cost) that needs no re-solve, but where
the duals are not unique it is only an upper bound of the value; so the top candidates are
priced exactly: the hire's row is opened to a small FTE step and walked up by warm
re-solves and HiGHS's ranging (a count of probes, not a time: the same input gives the same
file), which gives the value per FTE (the row's dual inside the first linear piece) and how
far it holds (where that dual changes).

Service stage: weighted shortfall avoided per FTE, net of the budget the hire uses (a hire
in a scope whose budget binds displaces spending elsewhere). Cost stage: money saved per FTE
with service held at its optimum (the hire's own cost counted); positive where a hire is
cheaper than the people or pools it replaces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

HIRE_EXACT = 12  # candidates per stage priced exactly (largest estimates first)
HIRE_RUNGS = 3  # re-solves per candidate past the first piece
# Each probe is a warm re-solve and a full ranging: per stage at most a quarter of the
# run's default count of sensitivity probes for the model's size (sensitivity.
# default_probes; at least two candidates' worth), counted, not timed, so the same input
# gives the same file.
PROBE_SHARE = 4
FIRST_STEP = 1e-4  # FTE: the hire's first step (inside the first linear piece)
MAX_EXACT_NONZEROS = 2_000_000  # above this, the estimates only (said in the file)
# hiring.csv re-solves the run's stages on a copy (cold: the plan's basis is not at hand
# where it is written), so it is made for models up to this size only (the run's notes say
# so above it); the demo has 9k nonzeros, the generated `small` about 50k.
MAX_NONZEROS = 300_000
COLUMNS = ["rank", "site_id", "region", "skill", "cost_per_fte", "cost_basis",
           "value_per_fte", "holds_up_to_fte", "value_kind", "cost_saving_per_fte",
           "cost_holds_up_to_fte", "cost_kind", "best_service"]


def _skill_tokens(value: object) -> list[str]:
    return sorted({p.strip() for p in str(value).split(";") if p.strip()})


def normalized_skills(value: object) -> str:
    """A skill set written one way: "pick;care" and "care;pick" are "care;pick"."""
    return ";".join(_skill_tokens(value))


def hire_costs(data: Any, candidates: pd.DataFrame, setting: Any = "median") -> pd.DataFrame:
    """The assumed cost per FTE of each candidate hire and how it was chosen.

    `setting` (output.hiring_cost): "median" (default) = the median cost_per_fte of the
    staff with that skill whose home site is in the site's region; where there is nobody,
    the company median of that skill; where nobody has it, the company median of all staff.
    A number: that cost for every hire."""
    out = candidates[["site_id", "region", "skill"]].copy()
    if setting is not None and not isinstance(setting, str):
        out["cost_per_fte"] = float(setting)
        out["cost_basis"] = "output.hiring_cost"
        return out
    staff = data.staff
    region_of = data.sites.set_index(data.sites["site_id"].astype(str))["region"].astype(str)
    st = pd.DataFrame({"skill": staff["skills"].astype(str).map(_skill_tokens),
                       "region": region_of.reindex(staff["home_site"].astype(str)).to_numpy(),
                       "cost": staff["cost_per_fte"].to_numpy(dtype=float)}).explode("skill")
    st = st[st["skill"].notna()]
    by_region = st.groupby(["region", "skill"])["cost"].agg(["median", "size"])
    by_skill = st.groupby("skill")["cost"].agg(["median", "size"])
    overall = float(np.median(staff["cost_per_fte"].to_numpy(dtype=float))) if len(staff) \
        else 0.0
    key = pd.MultiIndex.from_arrays([out["region"], out["skill"]])
    reg = by_region.reindex(key)
    sk = by_skill.reindex(out["skill"])
    cost = np.where(reg["median"].notna(), reg["median"],
                    np.where(sk["median"].notna(), sk["median"], overall))
    basis = np.where(
        reg["median"].notna(),
        [f"median of {int(n)} staff with skill {s} in region {r}" for n, s, r in
         zip(reg["size"].fillna(0), out["skill"], out["region"], strict=True)],
        np.where(sk["median"].notna(),
                 [f"company median of {int(n)} staff with skill {s}" for n, s in
                  zip(sk["size"].fillna(0), out["skill"], strict=True)],
                 "company median of all staff"))
    out["cost_per_fte"] = np.round(cost.astype(float), 2)
    out["cost_basis"] = basis
    return out


def candidates_of(data: Any) -> pd.DataFrame:
    """Every (site, skill) a target can use, with the target rows it would serve."""
    sites = data.sites.reset_index(drop=True)
    services = data.services.reset_index(drop=True)
    targets = data.targets.reset_index(drop=True)
    site_pos = pd.Series(np.arange(len(sites)), index=sites["site_id"].astype(str))
    svc = services.set_index(services["service_id"].astype(str))
    t = pd.DataFrame({
        "t": np.arange(len(targets)),
        "s": site_pos.reindex(targets["site_id"].astype(str)).to_numpy(),
        "site_id": targets["site_id"].astype(str).to_numpy(),
        "service_id": targets["service_id"].astype(str).to_numpy(),
        "skill": svc["skill"].astype(str).str.strip().reindex(
            targets["service_id"].astype(str)).to_numpy(),
        "p": svc["productivity"].astype(float).reindex(
            targets["service_id"].astype(str)).to_numpy(),
    })
    t["region"] = sites["region"].astype(str).to_numpy()[t["s"].to_numpy()]
    t = t.sort_values(["site_id", "skill", "service_id"], kind="stable")
    t["c"] = t.groupby(["site_id", "skill"], sort=False).ngroup()
    return t.reset_index(drop=True)


def _site_terms(built: Any) -> dict[str, Any]:
    """Per site: its capacity row, its min_staff row, and the budget rows covering it."""
    model, data = built.model, built.data
    sites = data.sites.reset_index(drop=True)
    site_ids = pd.Index(sites["site_id"].astype(str))
    cap = np.full(len(sites), -1)
    mins = np.full(len(sites), -1)
    for name, arr in (("capacity", cap), ("min_staff", mins)):
        block = model.con_blocks.get(name)
        if block is not None:
            pos = site_ids.get_indexer(block.labels["site_id"].astype(str))
            arr[pos] = block.start + np.arange(block.size)
    budget_rows: list[list[int]] = [[] for _ in range(len(sites))]
    block = model.con_blocks.get("budget")
    if block is not None and data.budget_sites is not None:
        b_pos = pd.Series(block.start + np.arange(block.size),
                          index=block.labels["budget_id"].astype(str))
        mem = data.budget_sites
        for b, s in zip(b_pos.reindex(mem["budget_id"].astype(str)).to_numpy(),
                        site_ids.get_indexer(mem["site_id"].astype(str)), strict=True):
            if s >= 0 and not np.isnan(b) and int(b) not in budget_rows[s]:
                budget_rows[s].append(int(b))
    return {"cap": cap, "min": mins, "budget": budget_rows}


def _columns(built: Any, cand: pd.DataFrame, cost: np.ndarray, terms: dict[str, Any],
             rows: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The model coefficients of each hire column (one per target row of `cand`)."""
    cov = built.model.con_blocks["coverage"].start
    out = []
    for t, s, p, c in zip(cand["t"], cand["s"], cand["p"], cost[cand["c"].to_numpy()],
                          strict=True):
        idx = [cov + int(t)]
        val = [float(p)]
        for row in (terms["cap"][s], terms["min"][s]):
            if row >= 0:
                idx.append(int(row))
                val.append(1.0)
        for row in terms["budget"][s]:
            idx.append(row)
            val.append(float(c))
        out.append((np.asarray(idx, dtype=np.int32), np.asarray(val)))
    return rows, out


def _stage_cost(stage: str, weights: dict[str, float]) -> float:
    """The hire column's objective coefficient per unit of its cost per FTE."""
    if stage == "cost":
        return 1.0
    if stage == "weighted":
        return float(weights.get("cost", 1.0))
    return 0.0


def hiring_table(built: Any, x: np.ndarray, order: list[str], mode: str = "lexicographic",
                 weights: dict[str, float] | None = None, rel_tol: float = 1e-6,
                 abs_tol: float = 1e-9, cost_setting: Any = "median",
                 exact: int = HIRE_EXACT, deadline: float | None = None) -> pd.DataFrame:
    """hiring.csv: one row per (site, skill) a target can use, ranked by value per FTE.

    `deadline` (time.monotonic()): the run's time limit; past it no more re-solves start,
    and the table's attrs["stopped"] says where it stopped."""
    import time

    from allocator.analysis.probes import default_probes, solve_at
    from allocator.solvers.highs import load_into_highs, new_highs
    from allocator.solvers.lexicographic import stage_objectives

    weights = weights or {}
    model, data = built.model, built.data
    cand = candidates_of(data)
    if cand.empty or "coverage" not in model.con_blocks:
        return pd.DataFrame(columns=COLUMNS)
    first = cand.drop_duplicates("c").reset_index(drop=True)
    costs = hire_costs(data, first, cost_setting)
    cost = costs["cost_per_fte"].to_numpy(dtype=float)
    terms = _site_terms(built)
    objectives = [o for o in stage_objectives(model, order, mode, weights)
                  if o.name in ("service", "cost", "weighted")]
    result = costs.copy()
    for column in ("value_per_fte", "holds_up_to_fte", "cost_saving_per_fte",
                   "cost_holds_up_to_fte"):
        result[column] = np.nan
    result["value_kind"] = ""
    result["cost_kind"] = ""
    result["best_service"] = ""
    if not objectives:
        return _finish(result)

    highs = new_highs()
    lb, ub = model.lb.copy(), model.ub.copy()
    if model.integer.any():
        lb[model.integer] = np.round(x[model.integer])
        ub[model.integer] = lb[model.integer]
    load_into_highs(highs, model, lb=lb, ub=ub, relax_integers=True)
    highs.setOptionValue("solver", "simplex")
    n0, m0 = model.num_vars, model.num_rows
    ncand = len(first)
    _rows, cols = _columns(built, cand, cost, terms, np.arange(len(cand)))
    do_exact = model.nnz <= MAX_EXACT_NONZEROS and exact > 0
    hire_row0 = None
    all_objectives = {o.name: o for o in stage_objectives(model, order, mode, weights)}
    stopped = ""
    for stage_i, objective in enumerate(objectives):
        if deadline is not None and time.monotonic() >= deadline:
            stopped = stopped or f"the {objective.name} stage"
            break
        highs.changeColsCost(n0, np.arange(n0, dtype=np.int32), objective.c)
        highs.changeObjectiveOffset(float(objective.constant))
        if deadline is not None:  # no re-solve runs past it (HiGHS's clock spans calls)
            highs.setOptionValue("time_limit", highs.getRunTime()
                                 + max(0.01, deadline - time.monotonic()))
        if hire_row0 is not None:
            k = _stage_cost(objective.name, weights)
            hire_cols = np.arange(n0, n0 + len(cand), dtype=np.int32)
            highs.changeColsCost(len(cand), hire_cols, k * cost[cand["c"].to_numpy()])
        highs.run()
        if highs.getModelStatus().name != "kOptimal":
            if highs.getModelStatus().name == "kTimeLimit":
                stopped = stopped or f"the {objective.name} stage"
            break
        y = np.asarray(highs.getSolution().row_dual, dtype=float)
        # Estimate: value = y . a_j - c_j (objective decrease per FTE), best service per site.
        k = _stage_cost(objective.name, weights)
        est = np.array([float(y[idx] @ val) for idx, val in cols]) - k * cost[cand["c"]]
        per = pd.DataFrame({"c": cand["c"], "v": est, "svc": cand["service_id"]})
        best = per.sort_values(["c", "v"], ascending=[True, False], kind="stable") \
            .drop_duplicates("c").set_index("c").reindex(np.arange(ncand))
        value = np.maximum(best["v"].to_numpy(dtype=float), 0.0) + 0.0
        kind = np.where(value > 1e-9, "estimate", "zero")
        holds = np.full(ncand, np.nan)
        if do_exact:
            if hire_row0 is None:  # the hires' rows and columns, closed (FTE <= 0)
                hire_row0 = highs.getNumRow()
                empty = np.zeros(0, dtype=np.int32)
                highs.addRows(ncand, np.full(ncand, -1e30), np.zeros(ncand), 0, empty,
                              empty, np.zeros(0))
                for j, (idx, val) in enumerate(cols):
                    row = hire_row0 + int(cand["c"].iloc[j])
                    rows = np.concatenate([idx, [row]]).astype(np.int32)
                    highs.addCol(k * float(cost[cand["c"].iloc[j]]), 0.0, 1e30, rows.size,
                                 rows, np.concatenate([val, [1.0]]))
            order_c = np.argsort(-value, kind="stable")[:exact]
            budget = max(2 * (1 + HIRE_RUNGS), default_probes(model) // PROBE_SHARE)
            for c in order_c:
                if value[c] <= 1e-9 or budget < 2:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    stopped = stopped or f"exact prices of the {objective.name} stage"
                    break
                row = hire_row0 + int(c)
                got, used = _walk(highs, row, solve_at, min(HIRE_RUNGS, budget - 1))
                budget -= used
                if got is not None:  # (value per FTE, how far it holds)
                    value[c], holds[c] = max(-got[0], 0.0) + 0.0, got[1]
                    kind[c] = "exact" if value[c] > 1e-9 else "zero"
                highs.changeRowBounds(row, -1e30, 0.0)
            highs.run()  # back at the stage optimum for its hold and the next stage
        best_svc = best["svc"].fillna("").astype(str).to_numpy()
        if objective.name in ("service", "weighted"):
            scale = 1.0
            result["value_per_fte"] = value * scale
            result["holds_up_to_fte"] = holds
            result["value_kind"] = kind
            result["best_service"] = np.where(value > 1e-9, best_svc, "")
        else:
            result["cost_saving_per_fte"] = value
            result["cost_holds_up_to_fte"] = holds
            result["cost_kind"] = kind
        if stage_i + 1 < len(objectives):  # hold this stage at its optimum, as the run does
            opt = float(highs.getInfo().objective_function_value)
            hold = opt + rel_tol * abs(opt) + abs_tol
            held = all_objectives[objective.name]
            nz = np.flatnonzero(held.c)
            highs.addRow(-1e30, float(hold - held.constant), nz.size, nz.astype(np.int32),
                         held.c[nz])
    del n0, m0
    table = _finish(result)
    table.attrs["stopped"] = stopped
    return table


def _walk(highs, row: int, solve_at,
          rungs: int) -> tuple[tuple[float, float] | None, int]:
    """The dual of the hire's row just above 0 FTE and the FTE up to which it holds (nan:
    not reached within `rungs` more re-solves); and the re-solves used."""
    got = solve_at(highs, row, -1e30, 0.0, True, FIRST_STEP)
    if got is None:
        return None, 1
    _obj, dual, _low, high = got
    used = 1
    for _ in range(rungs):
        if not np.isfinite(high):
            break
        probe = high + max(1e-6 * max(1.0, abs(high)), 1e-7)
        nxt = solve_at(highs, row, -1e30, 0.0, True, probe)
        used += 1
        if nxt is None and highs.getModelStatus().name == "kTimeLimit":
            return (dual, np.nan), used  # the deadline cut the walk: how far is unknown
        if nxt is None or abs(nxt[1] - dual) > 1e-9 * max(1.0, abs(dual)):
            return (dual, high), used  # the price changes just past `high`
        if nxt[3] <= probe:
            break
        high = nxt[3]
    else:
        if np.isfinite(high):
            return (dual, np.nan), used  # not walked to its end: unknown, not guessed
    return (dual, high), used


def _finish(result: pd.DataFrame) -> pd.DataFrame:
    out = result.sort_values(["value_per_fte", "cost_saving_per_fte", "site_id", "skill"],
                             ascending=[False, False, True, True], kind="stable",
                             na_position="last").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    from allocator.analysis.figures import round_sig

    for column in ("value_per_fte", "holds_up_to_fte", "cost_saving_per_fte",
                   "cost_holds_up_to_fte"):
        out[column] = round_sig(np.round(out[column].astype(float).to_numpy(), 9))
    return out[COLUMNS]
