"""OR-Library instances as allocator scenarios: GAP -> assignment, capacitated warehouse
location -> network, multi-dimensional knapsack (mknap) -> funding.

Public instances with published optima are the strongest test a formulation can get: no
one here wrote them or their answers. The converters write ordinary scenario folders (tables
as CSV and a scenario.toml), so the benchmark goes through the same loaders, schemas and
pipeline as a user's data. Standard library only: `allocator convert` starts fast and the
numbers are copied as written (no float round trip for integers).

mknap is a 0/1 multi-dimensional knapsack: each item draws a different amount from each of
m capacities. Neither spec model holds it as written (an assignment task uses one resource's
capacity; a funding budget counts spend one for one), so it maps onto funding with two
additions (see formulations/funding.py): `whole` programs (all or nothing) and a `draws`
table (the amount of each budget a program draws), i.e. capital budgeting.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from allocator.errors import InputError, Problem


class _Tokens:
    """Whitespace-separated tokens with their line numbers, for messages that point."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"file not found: {path}", str(path)) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
        self.items = [(tok, n) for n, line in enumerate(text.splitlines(), 1)
                      for tok in line.split()]
        self.pos = 0

    def _take(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise InputError([Problem(str(self.path), f"the file ends where {what} was expected")])
        item = self.items[self.pos]
        self.pos += 1
        return item

    def number(self, what: str) -> float:
        tok, line = self._take(what)
        try:
            return float(tok)
        except ValueError:
            raise InputError([Problem(str(self.path), f"expected {what}, found {tok!r}",
                                      line)]) from None

    def count(self, what: str) -> int:
        value = self.number(what)
        if value != int(value) or value < 0:
            tok, line = self.items[self.pos - 1]
            raise InputError([Problem(str(self.path), f"expected {what} (a whole number), "
                                      f"found {tok!r}", line)])
        return int(value)

    def numbers(self, k: int, what: str) -> list[float]:
        return [self.number(what) for _ in range(k)]

    def word_or_number(self, word: str, what: str) -> float | None:
        """A number, or `word` standing for "given on the command line" (None)."""
        if self.pos < len(self.items) and self.items[self.pos][0].lower() == word:
            self.pos += 1
            return None
        return self.number(what)

    def rest(self) -> list[tuple[str, int]]:
        return self.items[self.pos:]


def _num(value: float) -> str:
    """Integers without a decimal point, anything else exactly (repr round-trips)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _write_csv(path: Path, header: Sequence[str], rows: Iterator[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _folder(out: Path, name: str, force: bool) -> Path:
    folder = out / name
    if folder.exists() and not force:
        raise InputError(f"{folder} exists; use --force to overwrite its files", "--out")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _scenario(folder: Path, header: str, model: str, name: str, tables: Sequence[str],
              extra: str = "") -> Path:
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f'model = "{model}"', f'name = "{name}"', "", "[tables]"]
    lines += [f'{t} = "{t}.csv"' for t in tables]
    if extra:
        lines += ["", extra.strip()]
    lines += ["", "[output]", "# A benchmark instance: the plan and its objective are what count.",
              "sensitivity = false", "report = false", ""]
    path = folder / "scenario.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# -- GAP -> assignment ------------------------------------------------------------------------
@dataclass(frozen=True)
class GapInstance:
    """One generalized assignment instance: cost[i][j] and load[i][j] of job j on agent i."""

    name: str
    cost: list[list[float]]
    load: list[list[float]]
    capacity: list[float]


def read_gap(path: Path) -> list[GapInstance]:
    """OR-Library gapN.txt: P, then per instance m n, the m x n costs, loads, m capacities."""
    tokens = _Tokens(Path(path))
    count = tokens.count("the number of instances")
    stem = Path(path).stem
    instances = []
    for k in range(1, count + 1):
        m, n = tokens.count("the number of agents"), tokens.count("the number of jobs")
        cost = [tokens.numbers(n, f"a cost of instance {k}") for _ in range(m)]
        load = [tokens.numbers(n, f"a resource use of instance {k}") for _ in range(m)]
        capacity = tokens.numbers(m, f"a capacity of instance {k}")
        instances.append(GapInstance(f"{stem}-{k}", cost, load, capacity))
    return instances


def gap_sense(path: Path) -> str:
    """OR-Library publishes gap1-gap12 as maximization and gapa-gapd as minimization."""
    return "max" if re.fullmatch(r"gap\d+", Path(path).stem.lower()) else "min"


def write_gap(instance: GapInstance, out: Path, sense: str, force: bool = False) -> Path:
    folder = _folder(out, instance.name, force)
    m, n = len(instance.cost), len(instance.cost[0]) if instance.cost else 0
    _write_csv(folder / "tasks.csv", ["task_id", "required"],
               ((f"job{j + 1}", "true") for j in range(n)))
    _write_csv(folder / "resources.csv", ["resource_id", "capacity"],
               ((f"agent{i + 1}", _num(instance.capacity[i])) for i in range(m)))
    _write_csv(folder / "options.csv", ["task_id", "resource_id", "cost", "load"],
               ((f"job{j + 1}", f"agent{i + 1}", _num(instance.cost[i][j]),
                 _num(instance.load[i][j])) for j in range(n) for i in range(m)))
    word = "a profit" if sense == "max" else "a cost"
    return _scenario(
        folder, f"OR-Library generalized assignment {instance.name}: {m} agents, {n} jobs.\n"
        f"Converted by `allocator convert gap`; the cost column is {word}.", "assignment",
        instance.name, ("tasks", "resources", "options"), f'[objective]\nsense = "{sense}"')


# -- capacitated warehouse location -> network -------------------------------------------------
@dataclass(frozen=True)
class CapInstance:
    """Sites (capacity or None where the file says `capacity`, fixed cost) and customers
    (demand, and the cost of serving all of it from each site)."""

    name: str
    capacity: list[float | None]
    fixed_cost: list[float]
    demand: list[float]
    cost: list[list[float]]  # per customer, per site


def read_cap(path: Path) -> CapInstance:
    """OR-Library capNN.txt: m n; m lines `capacity fixed_cost`; per customer its demand,
    then m costs of serving all its demand from each site."""
    tokens = _Tokens(Path(path))
    m, n = tokens.count("the number of sites"), tokens.count("the number of customers")
    capacity, fixed = [], []
    for _ in range(m):
        capacity.append(tokens.word_or_number("capacity", "a site's capacity"))
        fixed.append(tokens.number("a site's fixed cost"))
    demand, cost = [], []
    for _ in range(n):
        demand.append(tokens.number("a customer's demand"))
        cost.append(tokens.numbers(m, "the cost of serving a customer"))
    extra = tokens.rest()
    if extra:
        raise InputError([Problem(str(path), f"unexpected text after the last customer: "
                                  f"{extra[0][0]!r}", extra[0][1])])
    return CapInstance(Path(path).stem, capacity, fixed, demand, cost)


def write_cap(instance: CapInstance, out: Path, capacity: float | None = None,
              force: bool = False) -> Path:
    """One network scenario; `capacity` fills the sites the file leaves open (capa/b/c)."""
    open_sites = [i for i, c in enumerate(instance.capacity) if c is None]
    if open_sites and capacity is None:
        raise InputError(f"{instance.name} leaves the site capacity open ('capacity' in the "
                         "file): give --capacity (e.g. the capacities in expected.csv)",
                         "--capacity")
    name = instance.name if capacity is None or not open_sites else \
        f"{instance.name}-{_num(capacity)}"
    folder = _folder(out, name, force)
    fill = 0.0 if capacity is None else capacity  # used only where the file has a number
    caps = [fill if c is None else c for c in instance.capacity]
    _write_csv(folder / "sites.csv", ["site_id", "fixed_cost", "capacity"],
               ((f"w{i + 1}", _num(instance.fixed_cost[i]), _num(caps[i]))
                for i in range(len(caps))))
    _write_csv(folder / "demand.csv", ["point_id", "demand"],
               ((f"c{j + 1}", _num(d)) for j, d in enumerate(instance.demand)))
    # The file gives the cost of serving a customer's whole demand; a lane costs per unit.
    _write_csv(folder / "lanes.csv", ["site_id", "point_id", "unit_cost"],
               ((f"w{i + 1}", f"c{j + 1}", _num(instance.cost[j][i] / d))
                for j, d in enumerate(instance.demand) if d > 0 for i in range(len(caps))))
    return _scenario(
        folder, f"OR-Library capacitated warehouse location {name}: {len(caps)} sites, "
        f"{len(instance.demand)} customers (customers may be split, as in capopt).\n"
        "Converted by `allocator convert cap`.", "network", name,
        ("sites", "demand", "lanes"))


# -- multi-dimensional knapsack -> funding -----------------------------------------------------
@dataclass(frozen=True)
class MknapInstance:
    """Items (profit, weight in each of m dimensions), m capacities, the published optimum."""

    name: str
    profit: list[float]
    weight: list[list[float]]  # per dimension, per item
    capacity: list[float]
    optimum: float


def read_mknap(path: Path) -> list[MknapInstance]:
    """OR-Library mknap1.txt: K; per instance `n m optimum`, n profits, m x n weights,
    m capacities."""
    tokens = _Tokens(Path(path))
    count = tokens.count("the number of instances")
    instances = []
    for k in range(1, count + 1):
        n, m = tokens.count("the number of items"), tokens.count("the number of constraints")
        optimum = tokens.number("the optimum")
        profit = tokens.numbers(n, f"a profit of instance {k}")
        weight = [tokens.numbers(n, f"a weight of instance {k}") for _ in range(m)]
        capacity = tokens.numbers(m, f"a capacity of instance {k}")
        instances.append(MknapInstance(f"{Path(path).stem}-{k}", profit, weight, capacity,
                                       optimum))
    return instances


def write_mknap(instance: MknapInstance, out: Path, force: bool = False) -> Path:
    """Items as whole programs (spend 0 or 1, value = profit), constraints as budgets."""
    folder = _folder(out, instance.name, force)
    n, m = len(instance.profit), len(instance.capacity)
    items = [f"item{j + 1}" for j in range(n)]
    _write_csv(folder / "programs.csv", ["program_id", "min_spend", "max_spend", "whole"],
               ((item, "0", "1", "true") for item in items))
    _write_csv(folder / "response.csv", ["program_id", "spend", "value"],
               ((item, s, v) for j, item in enumerate(items)
                for s, v in (("0", "0"), ("1", _num(instance.profit[j])))))
    _write_csv(folder / "budgets.csv", ["budget_id", "scope", "amount"],
               ((f"limit{i + 1}", "all", _num(instance.capacity[i])) for i in range(m)))
    _write_csv(folder / "draws.csv", ["program_id", "budget_id", "rate"],
               ((items[j], f"limit{i + 1}", _num(instance.weight[i][j]))
                for i in range(m) for j in range(n)))
    return _scenario(
        folder, f"OR-Library multi-dimensional knapsack {instance.name}: {n} items, {m} "
        f"constraints; published optimum {_num(instance.optimum)}.\nConverted by "
        "`allocator convert mknap`: items are whole programs, constraints budgets.",
        "funding", instance.name, ("programs", "response", "budgets", "draws"))


def convert(kind: str, source: Path, out: Path, capacities: Sequence[float] = (),
            sense: str = "auto", force: bool = False) -> list[Path]:
    """Write one scenario folder per instance in `source`; returns the scenario files."""
    if kind == "gap":
        chosen = gap_sense(source) if sense == "auto" else sense
        return [write_gap(inst, out, chosen, force) for inst in read_gap(source)]
    if kind == "cap":
        instance = read_cap(source)
        if not capacities or all(c is not None for c in instance.capacity):
            return [write_cap(instance, out, None, force)]
        return [write_cap(instance, out, c, force) for c in capacities]
    if kind == "mknap":
        return [write_mknap(inst, out, force) for inst in read_mknap(source)]
    raise InputError(f"unknown kind {kind!r}: gap, cap or mknap", "kind")


@click.command("convert")
@click.argument("kind", type=click.Choice(["gap", "cap", "mknap"]))
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder to write one scenario folder per instance into.")
@click.option("--capacity", "capacities", type=float, multiple=True,
              help="cap: the site capacity where the file says 'capacity' (capa/capb/capc); "
                   "repeat for one instance per capacity.")
@click.option("--sense", type=click.Choice(["auto", "min", "max"]), default="auto",
              show_default=True,
              help="gap: auto = max for gap1-gap12, min for gapa-gapd (as published).")
@click.option("--force", is_flag=True, help="Overwrite the files of existing instance folders.")
def convert_command(kind: str, source: Path, out_dir: Path, capacities: tuple[float, ...],
                    sense: str, force: bool) -> None:
    """Convert an OR-Library file (gap, cap or mknap) into scenario folders under --out."""
    try:
        written = convert(kind, source, out_dir, capacities, sense, force)
    except Exception as exc:
        from allocator.failures import report_failure  # the one mapping to exit codes

        sys.exit(report_failure(exc))
    for path in written:
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover - `python -m allocator.convert` before cli wiring
    convert_command()
