"""Write the ACME demo company (sites, services, staff, targets, budgets) as CSV files.

Why a script and not hand-edited CSVs: the demo must stay believable, feasible and small
(~1,500 eligible triples, so the whole-assignment MIP solves in seconds), and its teaching
points must survive edits: the South budget binds (spending it all still leaves shortfall)
and Hull is short of people whatever the budget. Every number derives from the tables below
and one seeded generator, so re-running gives byte-identical files.

Shape choices that keep the whole-assignment MIP easy: demand sits at or below what each
site's own people can serve (except at Leeds and Hull), so few people need to move; and an
outsider's pay plus travel always exceeds a South local's, so nobody is sent into the
budget-bound South and its part of the MIP is a plain LP. Without those, the cost stage of
the MIP took up to 15 s instead of ~1.5 s.

Run: python data/demo/make_demo.py   (writes next to this file)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20240601

# region -> (wage factor, share of region-mobile staff, budget as a share of full coverage:
# the cost of serving all demand at the site's mean pay)
REGIONS: dict[str, tuple[float, float, float]] = {
    "North": (0.96, 0.30, 1.05),
    "Midlands": (0.98, 0.30, 1.05),
    "South": (1.00, 0.15, 0.85),  # the binding budget: South has the people, not the money
    "France": (1.04, 0.25, 1.05),
}
COMPANY_BUDGET_SHARE = 0.97  # of the sum of the regional budgets

# site_id, staff id prefix, region, home FTE to staff it with, demand / home supply, min_fte,
# capacity headroom (capacity = home FTE x headroom)
SITES: tuple[tuple[str, str, str, float, float, float, float], ...] = (
    ("Leeds", "LEE", "North", 34, 1.05, 12, 1.25),
    ("York", "YRK", "North", 16, 0.70, 0, 1.30),
    ("Newcastle", "NCL", "North", 24, 0.90, 8, 1.20),
    ("Sheffield", "SHF", "North", 22, 0.85, 0, 1.25),
    ("Hull", "HUL", "North", 9, 0.90, 4, 1.80),  # short of people: see DEMAND_OVERRIDE
    ("Birmingham", "BHX", "Midlands", 36, 0.90, 14, 1.20),
    ("Nottingham", "NOT", "Midlands", 20, 0.85, 0, 1.30),
    ("Leicester", "LEI", "Midlands", 18, 0.90, 6, 1.25),
    ("Derby", "DBY", "Midlands", 12, 0.80, 0, 1.40),
    ("Coventry", "COV", "Midlands", 15, 0.90, 0, 1.25),
    ("Bristol", "BRS", "South", 28, 0.95, 10, 1.20),
    ("Southampton", "SOU", "South", 20, 0.95, 0, 1.25),
    ("Reading", "RDG", "South", 18, 0.95, 0, 1.25),
    ("Milton Keynes", "MKY", "South", 30, 0.95, 10, 1.20),
    ("Brighton", "BTN", "South", 11, 0.95, 0, 1.00),  # full: nobody can be sent in
    ("Orléans", "ORL", "France", 26, 0.90, 8, 1.25),
    ("Lille", "LIL", "France", 22, 0.85, 0, 1.25),
    ("Lyon", "LYS", "France", 24, 0.90, 6, 1.25),
    ("075 Paris-Nord", "PAR", "France", 30, 0.90, 10, 1.20),
    ("Rouen", "URO", "France", 12, 0.80, 0, 1.30),
)

# service_id, skill, productivity, base salary, shortfall weight, share of a site's people
SERVICES: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("picking", "pick", 2.0, 43_000, 2, 0.34),
    ("packing", "pack", 1.5, 43_500, 2, 0.24),
    ("returns", "returns", 1.25, 45_000, 1, 0.12),
    ("loading", "forklift", 1.25, 49_000, 1, 0.12),
    ("customer care", "care", 1.0, 48_000, 3, 0.10),
    ("maintenance", "mechanic", 1.0, 58_000, 3, 0.08),
)
CARE_HUBS = {
    "Leeds", "Hull", "Birmingham", "Bristol", "Milton Keynes", "Orléans", "075 Paris-Nord",
}
# Hull has just won a contact-centre contract: far more care work than the care-skilled
# people within reach (Hull's own, North's region-mobile ones, a few "any") can do.
DEMAND_OVERRIDE: dict[tuple[str, str], float] = {("Hull", "customer care"): 24.0}
NO_RETURNS = {"York", "Derby", "Hull", "Brighton", "Rouen", "Coventry"}
# (site, service) -> floor on the served share; each is met by home staff alone.
FLOORS: dict[tuple[str, str], float] = {
    ("Leeds", "customer care"): 0.8,
    ("Birmingham", "customer care"): 0.8,
    ("Bristol", "customer care"): 0.7,
    ("Milton Keynes", "customer care"): 0.7,
    ("Orléans", "customer care"): 0.8,
    ("075 Paris-Nord", "customer care"): 0.7,
    ("Leeds", "maintenance"): 0.6,
    ("Birmingham", "maintenance"): 0.6,
    ("Milton Keynes", "maintenance"): 0.6,
    ("Lyon", "maintenance"): 0.5,
    ("Birmingham", "picking"): 0.5,
    ("Bristol", "picking"): 0.5,
    ("Orléans", "picking"): 0.6,
    ("Hull", "picking"): 0.5,
    ("Reading", "packing"): 0.5,
}


def _offered(site: str) -> list[str]:
    """Services a site runs: all sites pick, pack, load and maintain; some do more."""
    out = ["picking", "packing", "loading", "maintenance"]
    if site not in NO_RETURNS:
        out.append("returns")
    if site in CARE_HUBS:
        out.append("customer care")
    return out


def _staff(rng: np.random.Generator) -> pd.DataFrame:
    """People (0.5 or 1 FTE) and a few agency pools per site, enough to fill its home FTE."""
    svc = {s[0]: s for s in SERVICES}
    rows: list[dict[str, object]] = []
    for site, code, region, home_fte, *_ in SITES:
        wage, p_region, _ = REGIONS[region]
        offered = _offered(site)
        share = np.array([svc[k][5] for k in offered])
        share = share / share.sum()
        target_fte = np.maximum(np.round(share * home_fte * 2) / 2, 1.0)
        count = 0
        for k, fte_needed in zip(offered, target_fte, strict=True):
            left = float(fte_needed)
            if k in ("picking", "packing") and left >= 6:  # an agency pool covers a chunk
                pool_fte = float(np.floor(left / 3 * 2) / 2)
                rows.append({
                    "staff_id": f"POOL-{code}-{svc[k][1].upper()}", "home_site": site,
                    "skills": svc[k][1], "fte": pool_fte,
                    "cost_per_fte": max(round(svc[k][3] * wage * 0.97, -2), 42_000.0),
                    "mobility": "site", "travel_cost": 0.0,
                })
                left -= pool_fte
            while left > 0:
                fte = 0.5 if left < 1 or rng.random() < 0.2 else 1.0
                left -= fte
                count += 1
                skills = [svc[k][1]]
                if rng.random() < 0.35:
                    other = rng.choice([s for s in offered if s != k])
                    skills.append(svc[str(other)][1])
                roll = rng.random()
                any_rate = 0.3 if k == "maintenance" else 0.02
                mobility = (
                    "any" if roll < any_rate
                    else "region" if roll < any_rate + p_region else "site"
                )
                if site == "Hull":
                    mobility = "site"  # Hull cannot lend people: it needs them all
                cost = svc[k][3] * wage * rng.uniform(0.97, 1.07)
                travel = {"site": 0.0, "region": rng.uniform(3000, 6000),
                          "any": rng.uniform(8000, 12000)}[mobility]
                rows.append({
                    "staff_id": f"{code}{count:03d}", "home_site": site,
                    "skills": ";".join(skills), "fte": fte,
                    "cost_per_fte": float(np.clip(round(cost, -2), 42_000, 68_000)),
                    "mobility": mobility, "travel_cost": float(round(travel, -2)),
                })
    return pd.DataFrame(rows)


def build() -> dict[str, pd.DataFrame]:
    """All five tables; demands and budgets follow from the staff actually generated."""
    rng = np.random.default_rng(SEED)
    services = pd.DataFrame(
        [(s, k, p) for s, k, p, *_ in SERVICES], columns=["service_id", "skill", "productivity"]
    )
    staff = _staff(rng)
    skill_of = dict(zip(services.skill, services.service_id, strict=True))
    prod = dict(zip(services.service_id, services.productivity, strict=True))
    weight = {s[0]: float(s[4]) for s in SERVICES}
    main = staff.skills.str.split(";").str[0].map(skill_of)
    supply = staff.groupby([staff.home_site, main]).fte.sum()
    wage_bill = (staff.fte * staff.cost_per_fte).groupby(staff.home_site).sum()
    mean_cost = wage_bill / staff.groupby("home_site").fte.sum()

    target_rows = []
    for site, _, _, _, ratio, _, _ in SITES:
        for k in _offered(site):
            home = float(supply.get((site, k), 0.0))
            demand = float(max(np.floor(ratio * prod[k] * home * rng.uniform(0.95, 1.05)), 1.0))
            demand = DEMAND_OVERRIDE.get((site, k), demand)
            target_rows.append({
                "site_id": site, "service_id": k, "demand": demand,
                "min_level": FLOORS.get((site, k), 0.0), "weight": weight[k],
            })
    targets = pd.DataFrame(target_rows)

    site_rows = []
    fte_at = staff.groupby("home_site").fte.sum()
    for site, _, region, _, _, min_fte, headroom in SITES:
        site_rows.append({
            "site_id": site, "region": region,
            "capacity_fte": float(np.ceil(fte_at[site] * headroom)),
            "min_fte": float(min_fte),
        })
    sites = pd.DataFrame(site_rows)

    # Full coverage cost per region: every unit of demand served at the site's mean wage.
    region_of = dict(zip(sites.site_id, sites.region, strict=True))
    full = (
        targets.demand / targets.service_id.map(prod) * targets.site_id.map(mean_cost)
    ).groupby(targets.site_id.map(region_of)).sum()
    amounts = {region: float(round(full[region] * share, -4))
               for region, (_, _, share) in REGIONS.items()}
    company = float(round(sum(amounts.values()) * COMPANY_BUDGET_SHARE, -5))
    budgets = pd.DataFrame({
        "budget_id": [f"B-{region[:3].upper()}" for region in amounts] + ["B-ACME"],
        "scope": [f"region:{region}" for region in amounts] + ["all"],
        "amount": [*amounts.values(), company],
    })
    return {"sites": sites, "services": services, "staff": staff, "targets": targets,
            "budgets": budgets}


def main() -> None:
    """Write the five CSV files next to this script."""
    for name, frame in build().items():
        frame.to_csv(HERE / f"{name}.csv", index=False)


if __name__ == "__main__":
    main()
