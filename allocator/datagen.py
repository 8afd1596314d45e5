"""Seeded generator of synthetic ops-model instances, for tests and benchmarks.

Why: the engine must be exercised at sizes no hand-made file reaches, with instances that
are feasible by construction, so that a failed solve is a bug and not bad luck. Alongside
the tables we build a reference plan (everyone at home on their main skill, working just
enough to meet every floor and staffing minimum) and size capacities and budgets so that
this plan fits; demands exceed what the staff can serve and budgets sit below the cost of
full coverage, so shortfall is real and some budgets bind. Every step is vectorized over
staff rows (no Python loop per row): the xl preset is generated in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

TABLES: tuple[str, ...] = ("sites", "services", "staff", "targets", "budgets")

# Staff counts, calibrated on seed 0 by counting the eligible (staff, site, service) triples E
# and the LP's nonzeros (availability, coverage, capacity, min_staff and budget rows):
#   tiny    30 staff,      3 sites, E = 50
#   small   2,000 staff,   50 sites, E = 10k,   55k nonzeros
#   medium  15,500 staff,  388 sites, E = 198k, 1.06M nonzeros
#   large   68,000 staff,  1,700 sites, E = 1.08M, 5.8M nonzeros
#   xl      300,000 staff, 5,000 sites, E = 5.0M, 26.5M nonzeros
# Nonzeros run ~5.3 per triple, not 3: every site has a capacity row and sits in two budgets
# (company-wide and regional). Other seeds give E within about +-5%.
SIZES: dict[str, int] = {
    "tiny": 30,
    "small": 2_000,
    "medium": 15_500,
    "large": 68_000,
    "xl": 300_000,
}

# (service_id, skill): service names read like a warehouse operator's, skills differ from
# the service ids so that the `skill` column is exercised.
_SERVICES: tuple[tuple[str, str], ...] = (
    ("picking", "pick"),
    ("packing", "pack"),
    ("returns", "returns"),
    ("loading", "forklift"),
    ("customer_care", "care"),
    ("maintenance", "mechanic"),
    ("inventory", "stock"),
    ("cleaning", "hygiene"),
    ("security", "guard"),
    ("dispatch", "planning"),
)
_PRODUCTIVITY = np.array([1.0, 1.25, 1.5, 2.0])
_PERSON_FTE = np.array([0.5, 0.6, 0.8, 1.0])
_PERSON_FTE_P = np.array([0.1, 0.1, 0.2, 0.6])
_WEIGHTS = np.array([1.0, 1.0, 1.5, 2.0, 3.0])


def _shape(n_staff: int) -> tuple[int, int, int]:
    """Sites, regions and services for a staff count: ~40 staff a site, sqrt(sites) regions.

    Regions hold at most ~25 sites, so that region-mobile staff (half of them) keep a bounded
    number of triples and the largest presets stay solvable.
    """
    n_sites = int(np.clip(round(n_staff / 40), 3, 5000))
    n_regions = max(1, round(float(np.sqrt(n_sites))), -(-n_sites // 25))
    n_services = int(np.clip(round(float(np.log10(max(n_staff, 1)))) + 4, 6, len(_SERVICES)))
    return n_sites, n_regions, n_services


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """Zero-padded string ids ("0007"): leading zeros must survive every loader."""
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _skill_strings(mask: np.ndarray, names: np.ndarray) -> np.ndarray:
    """`;`-joined skills per row, built once per distinct skill set rather than per row."""
    codes = mask.astype(np.int64) @ (1 << np.arange(mask.shape[1], dtype=np.int64))
    uniq, inverse = np.unique(codes, return_inverse=True)
    text = np.array(
        [";".join(names[(int(c) >> np.arange(len(names))) & 1 == 1]) for c in uniq], dtype=object
    )
    return text[inverse]


def _round_up(x: np.ndarray, step: float) -> np.ndarray:
    return np.ceil(x / step - 1e-9) * step


def _round_down(x: np.ndarray, step: float) -> np.ndarray:
    return np.floor(x / step + 1e-9) * step


BUDGET_SHAPES = ("nested", "site")


def generate_ops(n_staff: int, seed: int = 0, budgets: str = "nested") -> dict[str, pd.DataFrame]:
    """Return the five ops tables (data-contract columns, string ids); same seed, same tables.

    `budgets`: "nested" (one over everything, one per region, a few per site: coupling rows,
    where HiGHS's interior point is fastest) or "site" (the per-site budgets only: no
    coupling rows, where dual simplex is). Everything else is the same for both.
    """
    if budgets not in BUDGET_SHAPES:
        raise ValueError(f"budgets must be one of {BUDGET_SHAPES}, got {budgets!r}")
    if n_staff < 1:
        raise ValueError(f"n_staff must be at least 1, got {n_staff}")
    rng = np.random.default_rng(seed)
    n_sites, n_regions, n_svc = _shape(n_staff)
    n = n_staff

    # --- sites and services -------------------------------------------------------------
    region_of_site = rng.permutation(np.arange(n_sites) % n_regions)
    region_ids = _ids("R", n_regions, max(2, len(str(n_regions))))
    site_ids = _ids("", n_sites, max(4, len(str(n_sites))))
    site_size = rng.lognormal(0.0, 0.4, n_sites)
    svc_ids = np.array([s for s, _ in _SERVICES[:n_svc]], dtype=object)
    skill_names = np.array([k for _, k in _SERVICES[:n_svc]], dtype=object)
    productivity = rng.choice(_PRODUCTIVITY, n_svc)
    offer_rate = rng.uniform(0.45, 0.9, n_svc)
    offered = rng.random((n_sites, n_svc)) < offer_rate
    lonely = np.flatnonzero(~offered.any(axis=1))
    offered[lonely, rng.integers(0, n_svc, lonely.size)] = True

    # --- staff: home site, a main skill the home site offers, a few extra skills ------------
    home = rng.choice(n_sites, size=n, p=site_size / site_size.sum())
    popularity = np.log(rng.uniform(0.5, 2.0, n_svc))
    score = popularity + rng.gumbel(size=(n, n_svc))
    score[~offered[home]] = -np.inf
    primary = score.argmax(axis=1)
    skills = rng.random((n, n_svc)) < 0.65 / max(n_svc - 1, 1)
    skills[np.arange(n), primary] = True

    # 'any' staff see every site: keep their triples to a few % of the regional ones.
    p_any = min(0.05, 0.025 / n_regions)
    draw = rng.random(n)
    mobility = np.where(draw < p_any, "any", np.where(draw < p_any + 0.5, "region", "site"))
    if n >= 3 and not (mobility == "any").any():
        mobility[rng.integers(0, n)] = "any"  # tiny instances still exercise every mode

    pool = rng.random(n) < 0.12
    fte = np.where(
        pool, rng.integers(2, 9, n).astype(float), rng.choice(_PERSON_FTE, n, p=_PERSON_FTE_P)
    )
    wage = rng.uniform(0.85, 1.15, n_regions)[region_of_site[home]]
    premium = rng.uniform(0.95, 1.25, n_svc)[primary]
    cost = np.round(48_000 * wage * premium * rng.lognormal(0.0, 0.1, n), -2)
    travel = np.where(mobility == "site", 0.0, np.round(cost * rng.uniform(0.03, 0.12, n), -2))

    # --- targets: demand a bit above what home staff serve, some sites clearly short -------
    home_supply = np.bincount(home * n_svc + primary, weights=fte, minlength=n_sites * n_svc)
    home_supply = home_supply.reshape(n_sites, n_svc)
    t_site, t_svc = np.nonzero(offered)
    n_t = t_site.size
    supply = home_supply[t_site, t_svc]
    served_ref = productivity[t_svc] * supply
    short_site = rng.random(n_sites) < 0.05
    ratio = rng.lognormal(np.log(1.08), 0.15, n_t) * np.where(short_site[t_site], 1.6, 1.0)
    typical = served_ref[served_ref > 0].mean() if (served_ref > 0).any() else 1.0
    orphan_demand = productivity[t_svc] * rng.uniform(0.2, 0.8, n_t) * typical
    demand = np.round(np.where(supply > 0, ratio * served_ref, orphan_demand), 1)
    demand = np.maximum(demand, 0.1)
    # Floors only where home staff exist, and at most 90% of what they can serve.
    floor_cap = _round_down(np.where(supply > 0, 0.9 * served_ref / demand, 0.0), 0.01)
    wants_floor = (supply > 0) & (rng.random(n_t) < 0.25)
    min_level = np.where(
        wants_floor, np.minimum(_round_down(rng.uniform(0.2, 0.5, n_t), 0.05), floor_cap), 0.0
    )
    weight = rng.choice(_WEIGHTS, n_t)

    # --- reference plan: home staff work share f of their FTE on their main service --------
    home_fte = np.bincount(home, weights=fte, minlength=n_sites)
    min_fte = np.where(
        rng.random(n_sites) < 0.3, _round_down(rng.uniform(0.2, 0.6, n_sites) * home_fte, 0.5), 0.0
    )
    share_needed = np.zeros((n_sites, n_svc))
    share_needed[t_site, t_svc] = np.where(
        supply > 0, min_level * demand / (productivity[t_svc] * np.maximum(supply, 1e-12)), 0.0
    )
    site_share = np.divide(min_fte, home_fte, out=np.zeros(n_sites), where=home_fte > 0)
    share = np.maximum(share_needed, site_share[:, None])  # <= 0.9 by construction
    staff_share = share[home, primary]
    ref_fte = np.bincount(home, weights=staff_share * fte, minlength=n_sites)
    ref_cost = np.bincount(home, weights=staff_share * fte * cost, minlength=n_sites)

    roomy = np.where(rng.random(n_sites) < 0.1, rng.uniform(0.9, 1.0, n_sites),
                     rng.uniform(1.05, 1.6, n_sites))
    capacity = np.where(home_fte > 0, home_fte * roomy, rng.uniform(2.0, 10.0, n_sites))
    capacity = _round_up(np.maximum(capacity, ref_fte * 1.01 + 0.5), 0.5)

    # --- budgets: 80-95% of what full coverage would cost, never below the reference plan --
    mean_cost = cost @ fte / fte.sum()
    site_cost = np.divide(
        np.bincount(home, weights=cost * fte, minlength=n_sites), home_fte,
        out=np.full(n_sites, mean_cost), where=home_fte > 0,
    )
    full_cost = np.bincount(
        t_site, weights=demand / productivity[t_svc] * site_cost[t_site], minlength=n_sites
    )
    n_site_budgets = max(1, n_sites // 50)
    budget_sites = np.sort(rng.choice(n_sites, n_site_budgets, replace=False))
    region_full = np.bincount(region_of_site, weights=full_cost, minlength=n_regions)
    region_ref = np.bincount(region_of_site, weights=ref_cost, minlength=n_regions)
    full = np.concatenate([[full_cost.sum()], region_full, full_cost[budget_sites]])
    ref = np.concatenate([[ref_cost.sum()], region_ref, ref_cost[budget_sites]])
    frac = np.concatenate(
        [rng.uniform(0.85, 0.95, 1), rng.uniform(0.8, 0.95, n_regions + n_site_budgets)]
    )
    amount = _round_up(np.maximum(frac * full, ref * 1.02 + 1000.0), 1000.0)

    sites = pd.DataFrame({
        "site_id": site_ids.astype(object),
        "region": region_ids[region_of_site].astype(object),
        "capacity_fte": capacity,
        "min_fte": min_fte,
    })
    services = pd.DataFrame({
        "service_id": svc_ids, "skill": skill_names, "productivity": productivity,
    })
    staff = pd.DataFrame({
        "staff_id": _ids("E", n, max(6, len(str(n)))).astype(object),
        "home_site": site_ids[home].astype(object),
        "skills": _skill_strings(skills, skill_names),
        "fte": fte,
        "cost_per_fte": cost,
        "mobility": mobility.astype(object),
        "travel_cost": travel,
    })
    targets = pd.DataFrame({
        "site_id": site_ids[t_site].astype(object),
        "service_id": svc_ids[t_svc],
        "demand": demand,
        "min_level": np.round(min_level, 2),
        "weight": weight,
    })
    site_budget_ids = site_ids[budget_sites].astype(object)
    budget_table = pd.DataFrame({
        "budget_id": np.concatenate([["B-all"], "B-" + region_ids.astype(object),
                                     "B-site-" + site_budget_ids]).astype(object),
        "scope": np.concatenate([["all"], "region:" + region_ids.astype(object),
                                 "site:" + site_budget_ids]).astype(object),
        "amount": amount,
    })
    if budgets == "site":
        budget_table = budget_table[budget_table["scope"].str.startswith("site:")
                                    ].reset_index(drop=True)
    return {"sites": sites, "services": services, "staff": staff, "targets": targets,
            "budgets": budget_table}


def write_ops_instance(
    tables: dict[str, pd.DataFrame], folder: Path, name: str = "generated",
    partitioned: bool = False,
) -> Path:
    """Write `<table>.csv` files and a runnable `scenario.toml` next to them; return its path.

    `partitioned`: sites, staff and targets as folders of Parquet parts by region (staff by
    their home site's region; allocator/tables/partitioned.py), services and budgets as one
    Parquet file each: what a decomposed run's workers read region by region."""
    from allocator.tables.partitioned import PARTITIONED_TABLES, write_partitioned

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ['model = "ops"', f"name = {json.dumps(name)}", "", "[tables]"]
    region = pd.Series(tables["sites"]["region"].to_numpy(),
                       index=tables["sites"]["site_id"].to_numpy())
    for table in TABLES:
        if table not in tables:
            continue
        frame = tables[table]
        if not partitioned:
            frame.to_csv(folder / f"{table}.csv", index=False)
            lines.append(f'{table} = "{table}.csv"')
        elif table in PARTITIONED_TABLES:
            key = {"sites": "site_id", "staff": "home_site", "targets": "site_id"}[table]
            by = region.loc[frame[key].to_numpy()]
            rest = frame.drop(columns=["region"]) if table == "sites" else frame
            write_partitioned(rest, folder / table, by)
            lines.append(f'{table} = "{table}"')
        else:
            frame.to_parquet(folder / f"{table}.parquet", index=False)
            lines.append(f'{table} = "{table}.parquet"')
    lines += [
        "",
        "[objective]",
        'order = ["service", "cost"]',
        "",
        "[solver]",
        'name = "highs"',
        "time_limit = 600",
        "",
    ]
    scenario = folder / "scenario.toml"
    scenario.write_text("\n".join(lines), encoding="utf-8")
    return scenario
