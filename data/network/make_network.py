"""Write the depot network demo (sites, demand, lanes) as CSV files.

Why a script: lanes are every depot-town pair with a road distance and a haul cost derived
from the coordinates below, and hand-editing 126 lanes would drift out of step with them.
The teaching points: Birmingham is the existing depot (status open), Leeds's lease is ending
(status closed), and the cheapest network keeps only some of the five candidates; towns
beyond policy.max_distance of a depot cannot be served from it.

Run: python data/network/make_network.py   (writes next to this file; byte-identical reruns)
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROAD_FACTOR = 1.25  # road km per great-circle km
COST_PER_PALLET_KM = 0.055  # £ per pallet per road km

# site_id, latitude, longitude, weekly fixed cost (£), capacity (pallets/week), status
SITES = (
    ("Birmingham", 52.486, -1.890, 9000, 900, "open"),
    ("Leeds", 53.801, -1.549, 8000, 800, "closed"),
    ("Manchester", 53.481, -2.242, 8500, 850, "free"),
    ("Bristol", 51.455, -2.588, 7000, 600, "free"),
    ("Northampton", 52.240, -0.902, 6500, 700, "free"),
    ("Newcastle", 54.978, -1.618, 6000, 500, "free"),
    ("Cambridge", 52.205, 0.122, 6800, 550, "free"),
)
# point_id, latitude, longitude, demand (pallets/week)
TOWNS = (
    ("Liverpool", 53.408, -2.991, 140), ("Sheffield", 53.381, -1.470, 120),
    ("Nottingham", 52.954, -1.158, 110), ("Leicester", 52.637, -1.140, 90),
    ("Coventry", 52.407, -1.512, 80), ("Stoke", 53.003, -2.180, 60),
    ("Derby", 52.922, -1.476, 70), ("York", 53.960, -1.087, 50),
    ("Hull", 53.745, -0.336, 75), ("Sunderland", 54.906, -1.381, 65),
    ("Carlisle", 54.892, -2.932, 35), ("Oxford", 51.752, -1.258, 85),
    ("Reading", 51.454, -0.978, 100), ("Cardiff", 51.481, -3.179, 120),
    ("Exeter", 50.718, -3.534, 55), ("Norwich", 52.630, 1.297, 70),
    ("Ipswich", 52.057, 1.148, 60), ("Peterborough", 52.573, -0.241, 65),
)


def road_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
        (lon2 - lon1) / 2) ** 2
    return ROAD_FACTOR * 2 * 6371.0 * math.asin(math.sqrt(h))


def main() -> None:
    with (HERE / "sites.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["site_id", "fixed_cost", "capacity", "status"])
        writer.writerows((s[0], s[3], s[4], s[5]) for s in SITES)
    with (HERE / "demand.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["point_id", "demand"])
        writer.writerows((t[0], t[3]) for t in TOWNS)
    with (HERE / "lanes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["site_id", "point_id", "distance", "unit_cost"])
        for site in SITES:
            for town in TOWNS:
                km = road_km(site[1:3], town[1:3])
                # A trunk-haul floor of 15 km: even the next street costs a loaded van.
                cost = COST_PER_PALLET_KM * max(km, 15.0)
                writer.writerow([site[0], town[0], f"{km:.1f}", f"{cost:.2f}"])


if __name__ == "__main__":
    main()
