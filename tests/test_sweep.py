"""allocator sweep on a real Dask LocalCluster (2 workers): every point against a cold
`allocator.solve` of the edited table on disk; the grid, the journal and --resume; the
exact curve at and between its breakpoints against cold re-solves."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from allocator.negotiate.parametric import exact_curve
from allocator.negotiate.session import Session, parse_edit
from allocator.negotiate.sweep import JOURNAL_SUFFIX, parse_vary, sweep
from tests.conftest import run_cli
from tests.test_session import cold, demo_copy, read_raw, set_cell

B_SOU = "budgets[B-SOU].amount"


@pytest.fixture(scope="module")
def client():
    from allocator.bench.runner import local_client

    client = local_client(2)
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_copy(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def swept(demo: Path, client, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sweeps") / "budget"
    return sweep(demo, [f"{B_SOU}=2.5e6:4.5e6:5"], out, client=client, plans=True)


@pytest.mark.slow
def test_each_point_against_a_cold_run(swept, demo: Path, tmp_path: Path) -> None:
    frame = swept.points
    assert list(frame[B_SOU]) == pytest.approx([2.5e6, 3e6, 3.5e6, 4e6, 4.5e6])
    assert (frame["status"] == "optimal").all()
    assert frame["warm"].sum() >= 2  # every chain but its first point starts warm
    for _, row in frame.iterrows():
        run = cold(demo, "budgets", set_cell({"budget_id": "B-SOU"}, "amount", row[B_SOU]),
                   tmp_path)
        for stage, value in run.summary["objectives"].items():
            assert row[f"objective_{stage}"] == pytest.approx(value, rel=1e-7), stage
        assert row["cost"] == pytest.approx(float(run.plan["cost"].sum()), rel=1e-6)
        assert row["shortfall"] == pytest.approx(float(run.coverage["shortfall"].sum()),
                                                 rel=1e-6, abs=1e-6)
        budgets = run.budgets.set_index("budget_id")
        for bid in budgets.index:
            assert row[f"budget_used[{bid}]"] == pytest.approx(
                float(budgets.loc[bid, "spent"]), rel=1e-6, abs=1e-3)
            assert row[f"budget_headroom[{bid}]"] == pytest.approx(
                float(budgets.loc[bid, "headroom"]), rel=1e-6, abs=1e-3)
        # The South budget is tight below 4.2M, and then priced in the service stage.
        if row[B_SOU] < 4e6:
            assert "budget[B-SOU]" in row["binding_service"]


def test_sweep_folder(swept) -> None:
    out = swept.out
    names = {p.name for p in out.iterdir()}
    assert {"sweep.csv", "sweep.html", "sweep_service.svg", "sweep_cost.svg"} <= names
    assert not out.with_name(out.name + JOURNAL_SUFFIX).exists()  # removed when done
    page = (out / "sweep.html").read_text()
    assert "<svg" in page
    for loaded in ("<script", "<link", "src=", "<iframe", "@import"):
        assert loaded not in page.lower()
    assert not re.search(r"url\((?!#)", page)  # only references inside the page
    on_disk = pd.read_csv(out / "sweep.csv")
    assert on_disk["objective_service"].to_numpy() == pytest.approx(
        swept.points["objective_service"].to_numpy())
    for k in range(5):  # plans on request, one set per point
        plan = pd.read_csv(out / f"point-{k:04d}_plan.csv")
        assert float(plan["cost"].sum()) == pytest.approx(swept.points["cost"][k], rel=1e-6)


def test_grid_journal_and_resume(demo: Path, client, tmp_path: Path) -> None:
    varies = [f"{B_SOU}=3e6,4e6", "targets[region=North].demand*0.9,1.1"]
    full = sweep(demo, varies, tmp_path / "full", client=client)
    assert len(full.points) == 4
    assert list(full.points["targets[region=North].demand*"]) == [0.9, 1.1, 0.9, 1.1]
    # A crash after two points: their rows are in the journal; --resume solves the rest.
    journal = tmp_path / ("again" + JOURNAL_SUFFIX)
    journal.mkdir()
    text = (tmp_path / "full" / "sweep.csv").read_text().splitlines()
    (journal / "sweep.csv").write_text("\n".join(text[:3]) + "\n" + text[3][:25])  # torn
    with pytest.raises(InputError, match="--resume"):
        sweep(demo, varies, tmp_path / "again", client=client)
    again = sweep(demo, varies, tmp_path / "again", client=client, resume=True)
    assert again.solved == 2
    for col in ("objective_service", "objective_cost", "cost"):
        assert again.points[col].to_numpy() == pytest.approx(full.points[col].to_numpy(),
                                                             rel=1e-9)
    # One grid point against a cold run with both edits made on disk.
    row = full.points.iloc[3]
    case = tmp_path / "cold"
    shutil.copytree(demo.parent, case)
    sites = read_raw(case / "sites.csv")
    north = set(sites.loc[sites["region"] == "North", "site_id"])
    targets = read_raw(case / "targets.csv")
    rows = targets["site_id"].isin(north)
    targets.loc[rows, "demand"] = (targets.loc[rows, "demand"].astype(float) * 1.1).map(repr)
    targets.to_csv(case / "targets.csv", index=False)
    run = cold(case / "scenario.toml", "budgets",
               set_cell({"budget_id": "B-SOU"}, "amount", 4e6), tmp_path)
    for stage, value in run.summary["objectives"].items():
        assert row[f"objective_{stage}"] == pytest.approx(value, rel=1e-7)


def test_exact_curve_at_and_between_breakpoints(demo: Path, tmp_path: Path) -> None:
    session = Session(demo)
    curve = exact_curve(session, parse_edit(f"{B_SOU}=1"), 2.5e6, 4.5e6)
    assert set(curve["stage"]) == {"service", "cost"}
    service = curve[curve["stage"] == "service"].reset_index(drop=True)
    kinks = service[service["kind"] == "breakpoint"]
    assert len(kinks) >= 5
    # Each slope is the one between its breakpoints, and changes at each breakpoint.
    t, z = service["parameter"].to_numpy(), service["objective"].to_numpy()
    assert service["slope_after"][:-1].to_numpy() == pytest.approx(np.diff(z) / np.diff(t),
                                                                   rel=1e-6)
    assert (np.abs(np.diff(np.diff(z) / np.diff(t))) > 0).all()
    assert (kinks["starts_binding"].str.len() + kinks["stops_binding"].str.len() > 0).any()
    # At breakpoints and between them, against cold runs of the edited table.
    chosen = kinks["parameter"].to_numpy()[[0, len(kinks) // 2, -1]]
    between = 0.5 * (t[1:] + t[:-1])[[1, len(t) // 2]]
    for value in [*chosen, *between, 4.5e6]:
        run = cold(demo, "budgets", set_cell({"budget_id": "B-SOU"}, "amount", value),
                   tmp_path)
        for stage, found in run.summary["objectives"].items():
            part = curve[curve["stage"] == stage]
            on_curve = np.interp(value, part["parameter"], part["objective"])
            assert on_curve == pytest.approx(found, rel=1e-7), (stage, value)


def test_exact_curve_of_a_demand(demo: Path, tmp_path: Path) -> None:
    """A demand moves a coverage row and a shortfall bound: still one right-hand side."""
    session = Session(demo)
    target = "targets[Leeds,picking].demand"
    curve = exact_curve(session, parse_edit(f"{target}=1"), 10.0, 40.0)
    service = curve[curve["stage"] == "service"]
    for value in (17.5, 33.0):
        run = cold(demo, "targets", set_cell({"site_id": "Leeds", "service_id": "picking"},
                                             "demand", value), tmp_path)
        for stage, found in run.summary["objectives"].items():
            part = curve[curve["stage"] == stage]
            assert np.interp(value, part["parameter"], part["objective"]) == pytest.approx(
                found, rel=1e-7), (stage, value)
    assert len(service) >= 2


def test_exact_refuses_what_is_not_a_right_hand_side(demo: Path) -> None:
    session = Session(demo)
    with pytest.raises(InputError, match="not a right-hand side"):
        exact_curve(session, parse_edit("staff[LEE001].cost_per_fte=1"), 40000, 50000)


def test_vary_syntax() -> None:
    vary = parse_vary("budgets[B-SOU].amount=2e6:4e6:21")
    assert len(vary.values) == 21 and vary.values[0] == 2e6 and vary.values[-1] == 4e6
    assert parse_vary("targets[region=North].demand*0.8,1,1.2").values == (0.8, 1.0, 1.2)
    for bad, words in [("budgets[B-SOU].amount=4e6:2e6:3", "FROM must be less than TO"),
                       ("budgets[B-SOU].amount=1:2", "FROM:TO:COUNT"),
                       ("budgets[B-SOU].amount=1:2:x", "not a whole number")]:
        with pytest.raises(InputError, match=words):
            parse_vary(bad)


def test_cli_bad_vary_exit_2(demo: Path, tmp_path: Path) -> None:
    done = run_cli("sweep", demo, "--vary", "budgets[B-SUO].amount=1:2:3", "--vary",
                   "sites[Leds].capacity_fte*2", out=tmp_path / "x")
    assert done.code == 2
    assert "did you mean 'B-SOU'?" in done.stderr and "did you mean 'Leeds'?" in done.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_cli_end_to_end(case: Path, tmp_path: Path) -> None:
    """The command as a person runs it (its own LocalCluster), plain progress lines in a log."""
    out = tmp_path / "sweep"
    done = run_cli("sweep", case / "scenario.toml", "--vary", "budgets[all].amount=300:700:3",
                   "--exact", "--workers", "1", out=out)
    assert done.code == 0, done.stderr
    assert "sweep: 3/3 points done" in done.stderr
    frame = pd.read_csv(out / "sweep.csv")
    assert len(frame) == 3 and (frame["status"] == "optimal").all()
    exact = pd.read_csv(out / "exact.csv")
    session = Session(case / "scenario.toml")
    for _, row in frame.iterrows():
        point = session.solve([parse_edit(f"budgets[all].amount={row['budgets[all].amount']}")],
                              warm=False)
        part = exact[exact["stage"] == "service"]
        assert np.interp(row["budgets[all].amount"], part["parameter"],
                         part["objective"]) == pytest.approx(point.objectives["service"],
                                                             rel=1e-7)


def _price(text: str, name: str) -> float:
    """The price of `name` in a binding_<stage> cell ('budget[B-SOU] -2.6e-05; ...')."""
    for item in str(text).split("; "):
        label, _, value = item.rpartition(" ")
        if label == name:
            return float(value)
    return 0.0


@pytest.mark.slow
def test_prices_against_the_cold_sensitivity_report(swept, demo: Path, tmp_path: Path) -> None:
    """The South budget's price in each stage, against a cold run's sensitivity.csv."""
    frame = swept.points
    for k in (1, 3):
        row = frame.iloc[k]
        run = cold(demo, "budgets", set_cell({"budget_id": "B-SOU"}, "amount", row[B_SOU]),
                   tmp_path / "priced", output__sensitivity=True)
        sens = run.sensitivity
        for stage in ("service", "cost"):
            found = sens[(sens["stage"] == stage) & (sens["family"] == "budget")
                         & (sens["labels"] == "B-SOU")].iloc[0]
            assert str(found["dual_unique"]).lower() == "true"
            assert _price(row[f"binding_{stage}"], "budget[B-SOU]") == pytest.approx(
                float(found["dual"]), rel=1e-5, abs=1e-12), (k, stage)
