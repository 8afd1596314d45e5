"""allocator serve: the negotiation room, through its API and in a real Chromium.

Every figure the room shows is checked against an independent cold `allocator.solve` of the
edited scenario, written by the test itself (the tables copied and edited with pandas), not
through the room's own edit path.
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import time
import zipfile
from pathlib import Path

import httpx
import pandas as pd
import pytest

import allocator
from allocator.serve.server import served
from tests.conftest import DEMO, ROOT, TINY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DEMO_DATA = ROOT / "data" / "demo"


def cold(tmp: Path, edits: dict[tuple[str, str, str], float], data: Path = DEMO_DATA,
         scenario: Path = DEMO) -> allocator.Run:
    """A cold CLI-pipeline solve of the scenario with these cells edited in its CSV files.
    `edits`: (table, id, column) -> value; targets' id is 'site/service'."""
    folder = tmp / f"cold-{time.monotonic_ns()}"
    shutil.copytree(data, folder / "data")
    for (table, key, column), value in edits.items():
        path = folder / "data" / f"{table}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if table == "targets":
            site, service = key.rsplit("/", 1)
            mask = (frame["site_id"] == site) & (frame["service_id"] == service)
        else:
            mask = frame.iloc[:, 0] == key
        assert mask.sum() == 1, (table, key)
        frame.loc[mask, column] = repr(float(value))
        frame.to_csv(path, index=False)
    text = scenario.read_text()
    text = re.sub(r'"(?:[^"\n]*/)?([a-z]+\.csv)"', r'"data/\1"', text)
    (folder / "scenario.toml").write_text(text)
    # The plan and its tables only: the sensitivity analysis does not change them.
    return allocator.solve(folder / "scenario.toml", out=folder / "run", output__report=False,
                           output__sensitivity=False)


@pytest.fixture(scope="module")
def room():
    with served(DEMO) as s:
        yield s


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return cold(tmp_path_factory.mktemp("base"), {})


@pytest.fixture(scope="module")
def south_cut(tmp_path_factory):
    """The cold solve of 'what if the South budget is cut by 10%?'."""
    return cold(tmp_path_factory.mktemp("cut"), {("budgets", "B-SOU", "amount"): 3_285_000})


def auth(s) -> dict[str, str]:
    return {"Authorization": f"Bearer {s.token}"}


def whatif(s, changes, name=None, headers=None) -> httpx.Response:
    return httpx.post(s.base_url + "/api/whatif", json={"changes": changes, "name": name},
                      headers=headers or auth(s), timeout=60)


SOUTH = {"table": "budgets", "id": "B-SOU", "column": "amount", "value": 4_500_000}


# ---- the API ---------------------------------------------------------------------------

@pytest.mark.slow
def test_every_request_needs_the_token_and_nothing_is_solved_without_it(room):
    before = room.room.engine.session.basis
    url = room.base_url
    assert httpx.get(url + "/").status_code == 401
    assert "valid token" in httpx.get(url + "/").text
    assert httpx.get(url + "/api/run").status_code == 401
    assert httpx.get(url + "/openapi.json").status_code == 401
    assert httpx.get(url + "/api/run?token=wrong").status_code == 401
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(url + "/api/whatif", json={"changes": [SOUTH], "name": "sneaky"},
                       headers=headers)
        assert r.status_code == 401, r.text
    # A token in the URL is not enough to change state (a link cannot make the room solve).
    r = httpx.post(f"{url}/api/whatif?token={room.token}", json={"changes": [SOUTH],
                                                                 "name": "sneaky"})
    assert r.status_code == 401
    assert "sneaky" not in room.room.alternatives
    assert room.room.engine.session.basis is before  # no solve happened
    assert httpx.get(room.url).status_code == 200  # the printed URL opens the page
    spec = httpx.get(url + "/openapi.json", headers=auth(room)).json()
    assert "/api/whatif" in spec["paths"] and "/api/run" in spec["paths"]


def test_run_state_is_the_cli_run(room, base_run, tmp_path):
    state = httpx.get(room.base_url + "/api/run", headers=auth(room)).json()
    assert state["name"] == "acme-demo"
    for stage, value in base_run.objectives.items():
        assert state["base"]["objectives"][stage] == pytest.approx(value, rel=1e-9)
    kpis = state["base"]["kpis"]
    assert kpis["cost"] == pytest.approx(base_run.plan["cost"].sum(), rel=1e-9)
    assert kpis["unmet"] == pytest.approx(base_run.coverage["shortfall"].sum(), abs=1e-6)
    budgets = {r["budget_id"]: r for r in state["base"]["budgets"]}
    for r in base_run.budgets.itertuples():
        assert budgets[r.budget_id]["headroom"] == pytest.approx(r.headroom, abs=1e-3)
    # The binding budget (South) is read from the tables and priced in words with its range.
    assert {"family": "budget", "id": "B-SOU"} in [
        {"family": b["family"], "id": b["id"]} for b in state["base"]["binding"]]
    south = [p for p in state["base"]["prices"] if p["family"] == "budget"
             and p["stage"] == "service"]
    assert south and south[0]["rhs_low"] is not None and "this price holds from" in \
        south[0]["sentence"]
    # The price in words against a cold re-solve with 1,000 more (inside the stated range).
    said = re.search(r"each extra 1,000 of money avoids ([0-9.]+) units", south[0]["sentence"])
    assert said and south[0]["rhs_low"] <= 3_651_000 <= south[0]["rhs_high"]
    more = cold(tmp_path, {("budgets", "B-SOU", "amount"): 3_651_000})
    avoided = base_run.objectives["service"] - more.objectives["service"]
    assert float(said.group(1)) == pytest.approx(avoided, rel=5e-4)  # 4 digits in words
    editable = {r["budget_id"]: r["amount"] for r in state["inputs"]["budgets"]["rows"]}
    assert editable["B-SOU"] == 3_650_000


def test_whatif_equals_a_cold_cli_solve_of_the_edited_files(room, base_run, tmp_path):
    changes = [SOUTH, {"table": "targets", "id": ["Hull", "customer care"],
                       "column": "demand", "value": 20},
               {"table": "sites", "id": "Leeds", "column": "capacity_fte", "value": 30}]
    r = whatif(room, changes)
    assert r.status_code == 200, r.text
    got = r.json()
    ref = cold(tmp_path, {("budgets", "B-SOU", "amount"): 4_500_000,
                          ("targets", "Hull/customer care", "demand"): 20,
                          ("sites", "Leeds", "capacity_fte"): 30})
    assert got["status"] == ref.status == "optimal"
    stages = {s["name"]: s["objective"] for s in got["stages"]}
    assert stages.keys() == ref.objectives.keys()
    for stage, value in ref.objectives.items():
        assert stages[stage] == pytest.approx(value, rel=1e-7, abs=1e-7)
    assert got["cost"] == pytest.approx(ref.plan["cost"].sum(), rel=1e-7)
    assert got["shortfall"] == pytest.approx(ref.coverage["shortfall"].sum(), abs=1e-5)
    cov = pd.DataFrame(got["outcome"]["coverage"]).merge(ref.coverage,
                                                         on=["site_id", "service_id"])
    assert len(cov) == len(ref.coverage)
    assert (cov["shortfall_x"] - cov["shortfall_y"]).abs().max() < 1e-5
    spent = {b["budget_id"]: b["spent"] for b in got["outcome"]["budgets"]}
    for b in ref.budgets.itertuples():
        assert spent[b.budget_id] == pytest.approx(b.spent, rel=1e-7, abs=1e-3)
    # The difference against the base, recomputed from the two plan tables.
    key = ["staff_id", "site_id", "service_id"]
    both = base_run.plan.groupby(key)["fte"].sum().rename("a").to_frame().join(
        ref.plan.groupby(key)["fte"].sum().rename("b"), how="outer").fillna(0.0)
    delta = both["b"] - both["a"]
    assert got["difference"]["moved_fte"] == pytest.approx(0.5 * delta.abs().sum(), abs=1e-5)
    assert len(got["moves"]) == int((delta.abs() > 1e-6).sum())
    assert {"family": "budget", "id": "B-SOU"} in got["difference"]["stopped_binding"]
    assert got["difference"]["kpis"]["weighted_shortfall"] == pytest.approx(
        ref.objectives["service"] - base_run.objectives["service"], abs=1e-7)


def test_bad_edits_are_every_problem_in_words_never_a_500(room):
    bad = [{"table": "budgets", "id": "B-SOU", "column": "amount", "value": -5},
           {"table": "budgets", "id": "B-NOPE", "column": "amount", "value": 1},
           {"table": "targets", "id": "Leeds/picking", "column": "min_level", "value": 2},
           {"table": "sites", "id": "Leeds", "column": "capacity_fte", "value": "lots"},
           {"table": "staff", "id": "LEE001", "column": "fte", "value": 2},
           {"table": "sites", "id": "Leeds", "column": "region", "value": 1},
           {"table": "budgets", "id": "B-SOU", "column": "amount", "value": 1e300}]
    r = whatif(room, bad, name="bad")
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert len(problems) == len(bad)
    text = "\n".join(problems)
    assert "budgets B-SOU amount" in text and "must be at least 0, found -5" in text
    assert "no row of budgets has budget_id 'B-NOPE'" in text
    assert "must be at most 1, found 2" in text
    assert "expected a number, found 'lots'" in text
    assert "table must be one of budgets, sites, targets" in text
    assert "too large" in text
    assert "bad" not in room.room.alternatives
    # Malformed requests: clear 4xx answers, not tracebacks.
    h = {**auth(room), "Content-Type": "application/json"}
    r = httpx.post(room.base_url + "/api/whatif", content=b"{not json", headers=h)
    assert r.status_code == 422 and "Traceback" not in r.text
    r = httpx.post(room.base_url + "/api/whatif", json={"changes": "B-SOU"}, headers=auth(room))
    assert r.status_code == 422 and r.json()["problems"]
    r = httpx.post(room.base_url + "/api/whatif", content=b'{"changes": []}',
                   headers={**auth(room), "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(room.base_url + "/api/whatif", content=b"x" * 300_000, headers=h)
    assert r.status_code == 413
    r = whatif(room, [SOUTH], name="<bad/name>\n")
    assert r.status_code == 422 and "name" in r.json()["problems"][0]


def test_an_infeasible_whatif_says_so_without_figures(room):
    # Hand-checked: Leeds can hold at most 42 FTE (sites.csv capacity_fte), so a minimum
    # staffing of 500 there cannot be met.
    r = whatif(room, [{"table": "sites", "id": "Leeds", "column": "min_fte", "value": 500}])
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "infeasible"
    assert got["cost"] is None and got["shortfall"] is None and got["difference"] is None
    assert set(got["outcome"]["kpis"].values()) == {None}


def test_cross_site_requests_are_refused(room):
    r = whatif(room, [SOUTH], name="csrf", headers={**auth(room),
                                                    "Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    assert "csrf" not in room.room.alternatives
    same = whatif(room, [], headers={**auth(room), "Origin": room.base_url})
    assert same.status_code == 200


def test_one_solve_at_a_time_others_are_told_to_wait(room):
    lock, wait = room.room.solving, room.room.queue_seconds
    assert lock.acquire(timeout=30)  # a solve in progress
    room.room.queue_seconds = 0.3
    try:
        began = time.perf_counter()
        r = whatif(room, [SOUTH])
        assert r.status_code == 409, r.text
        assert "another solve" in r.json()["error"] and r.headers["Retry-After"]
        assert time.perf_counter() - began >= 0.3
    finally:
        lock.release()
        room.room.queue_seconds = wait
    assert whatif(room, [SOUTH]).status_code == 200


def test_alternatives_are_kept_compared_and_exported_as_runnable_scenarios(room, tmp_path):
    cut = {"table": "budgets", "id": "B-SOU", "column": "amount", "value": 3_200_000}
    for name, changes in (("south up", [SOUTH]), ("south cut", [cut])):
        assert whatif(room, changes, name=name).status_code == 200
    side = httpx.get(room.base_url + "/api/alternatives", headers=auth(room)).json()
    names = [c["name"] for c in side["alternatives"]]
    assert names[0] == "base" and {"south up", "south cut"} <= set(names)
    cols = {c["name"]: c for c in side["alternatives"]}
    assert cols["south cut"]["kpis"]["weighted_shortfall"] > \
        cols["base"]["kpis"]["weighted_shortfall"] > cols["south up"]["kpis"][
            "weighted_shortfall"]
    # The export runs as it is with the CLI and gives the same optimum.
    r = httpx.get(room.base_url + "/api/alternatives/south cut/export", headers=auth(room))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
    scenario = tmp_path / "south-cut" / "scenario.toml"
    budgets = pd.read_csv(tmp_path / "south-cut" / "budgets.csv")
    assert budgets.set_index("budget_id").loc["B-SOU", "amount"] == 3_200_000
    again = allocator.solve(scenario, out=tmp_path / "run", output__report=False)
    assert again.status == "optimal"
    for stage, value in again.objectives.items():
        assert cols["south cut"]["objectives"][stage] == pytest.approx(value, rel=1e-7)
    headroom = {b["budget_id"]: b["headroom"] for b in cols["south cut"]["budgets"]}
    for b in again.budgets.itertuples():
        assert headroom[b.budget_id] == pytest.approx(b.headroom, abs=1e-3)
    assert {"family": "budget", "id": "B-SOU"} in [
        {"family": b["family"], "id": b["id"]} for b in cols["south cut"]["binding"]]
    assert httpx.delete(room.base_url + "/api/alternatives/south cut",
                        headers=auth(room)).status_code == 200
    assert httpx.get(room.base_url + "/api/alternatives/south cut",
                     headers=auth(room)).status_code == 422


def test_value_curve_of_a_budget_reads_a_10pc_cut_as_a_cold_solve_does(room, base_run,
                                                                      south_cut):
    r = httpx.get(room.base_url + "/api/curve", params={"budget": "B-SOU"}, headers=auth(room),
                  timeout=120)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["today"] == 3_650_000 and c["low"] == pytest.approx(2_555_000)
    read = {(x["stage"], x["change"]): x for x in c["readings"]}
    assert read[("service", 0.0)]["objective"] == pytest.approx(base_run.objectives["service"],
                                                                rel=1e-6)
    assert read[("service", -0.1)]["amount"] == pytest.approx(3_285_000)
    for stage, value in south_cut.objectives.items():
        assert read[(stage, -0.1)]["objective"] == pytest.approx(value, rel=1e-6), stage
    stages = {p["stage"] for p in c["points"]}
    assert stages == {"service", "cost"}
    # The curve leaves the session as it found it: a what-if after it is still the cold answer.
    after = whatif(room, [{"table": "budgets", "id": "B-SOU", "column": "amount",
                           "value": 3_285_000}]).json()
    for stage in south_cut.objectives:
        assert {s["name"]: s["objective"] for s in after["stages"]}[stage] == pytest.approx(
            south_cut.objectives[stage], rel=1e-7)
    bad = httpx.get(room.base_url + "/api/curve", params={"budget": "B-NOPE"},
                    headers=auth(room))
    assert bad.status_code == 422 and "no budget 'B-NOPE'" in bad.json()["problems"][0]


def test_a_run_folder_is_served_with_its_own_plan(base_run):
    with served(base_run.folder) as s:
        state = httpx.get(s.base_url + "/api/run", headers=auth(s)).json()
        assert state["base"]["how"] == "the run's own plan"
        assert state["base"]["kpis"]["cost"] == pytest.approx(base_run.plan["cost"].sum())
        r = whatif(s, [SOUTH])
        assert r.status_code == 200
        assert r.json()["weighted_shortfall"] == pytest.approx(66.0, abs=1e-6)


def test_cli_refuses_a_busy_port_and_lists_its_exit_codes():
    from click.testing import CliRunner

    from allocator.cli import main

    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "RUN_OR_SCENARIO" in help_text and "Exit codes" in help_text
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", str(DEMO), "--port", str(port)])
    assert result.exit_code == 2 and "port is in use" in result.output
    missing = CliRunner().invoke(main, ["serve", "no/such/scenario.toml", "--port", "0"])
    assert missing.exit_code == 2 and "give a scenario file (.toml) or a run folder" in \
        missing.output


# ---- the page, in Debian's Chromium ----------------------------------------------------

def _browser(p):
    return p.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"])


def _watch(page, errors: list[str], requests: list[str]) -> None:
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").replace("+", "").strip())


def _shown(page, selector: str) -> float:
    return _number(page.locator(selector).inner_text())


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_page_type_a_budget_solve_and_see_the_cli_figures(room, base_run, south_cut,
                                                          tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ref = cold(tmp_path, {("budgets", "B-SOU", "amount"): 4_200_000})
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _watch(page, errors, requests)
        page.goto(room.url)
        page.wait_for_selector("body[data-ready=true]")
        assert "token" not in page.url  # the token left the address bar
        # The base, as the CLI run has it (rounded as shown).
        assert _shown(page, "#base-kpi-weighted_shortfall") == pytest.approx(
            base_run.objectives["service"], abs=0.005)
        assert _shown(page, "#base-kpi-cost") == pytest.approx(
            base_run.plan["cost"].sum(), abs=0.5)
        row = page.locator('#budgets tr[data-id="B-SOU"]')
        assert _number(row.locator("td.headroom").inner_text()) == pytest.approx(0, abs=0.5)
        assert "budget B-SOU is at its limit" in page.locator("#binding").inner_text()
        assert "this price holds from" in page.locator("#prices").inner_text()

        cell = page.locator('input[data-table=budgets][data-id="B-SOU"][data-column=amount]')
        cell.fill("4,200,000")
        page.fill("#alt-name", "South 4.2M")
        page.click("#solve")
        expect(page.locator("#message")).to_have_text(re.compile("^Solved"), timeout=30_000)
        assert _shown(page, "#kpi-weighted_shortfall") == pytest.approx(
            ref.objectives["service"], abs=0.005)
        assert _shown(page, "#kpi-unmet") == pytest.approx(
            ref.coverage["shortfall"].sum(), abs=0.005)
        assert _shown(page, "#kpi-cost") == pytest.approx(ref.plan["cost"].sum(), abs=0.5)
        served_share = ref.coverage["served"].sum() / ref.coverage["demand"].sum()
        assert _shown(page, "#kpi-served_share") == pytest.approx(100 * served_share,
                                                                  abs=0.05)
        assert _shown(page, "#delta-weighted_shortfall") == pytest.approx(
            ref.objectives["service"] - base_run.objectives["service"], abs=0.005)
        spent = ref.budgets.set_index("budget_id").loc["B-SOU", "spent"]
        assert _number(row.locator("td.spent").inner_text()) == pytest.approx(spent, abs=0.5)
        assert _number(row.locator("td.amount").inner_text()) == 4_200_000
        hull = ref.coverage.set_index(["site_id", "service_id"]).loc[
            ("Hull", "customer care"), "served_share"]
        shown = page.locator('#coverage tr[data-site="Hull"] td[data-service="customer care"]')
        assert _number(shown.inner_text()) == pytest.approx(100 * hull, abs=0.5)
        assert page.locator("#difference").is_visible()
        assert _number(page.locator("#moves-count").inner_text()) > 0
        assert "South 4.2M" in page.locator("#alternatives").inner_text()

        # The value curve of the South budget: a 10% cut read off it, as a cold solve has it.
        row.locator("button.curve").click()
        expect(page.locator("#curve-cut-service")).to_be_visible(timeout=60_000)
        assert _shown(page, "#curve-cut-service") == pytest.approx(
            south_cut.objectives["service"], abs=0.005)
        assert _shown(page, "#curve-cut-cost") == pytest.approx(
            south_cut.objectives["cost"], abs=0.5)
        assert page.locator("#curve-charts svg").count() == 2

        # A bad edit: a clear message on the page, the cell marked, nothing solved.
        cell.fill("-5")
        page.click("#solve")
        expect(page.locator("#message")).to_contain_text("must be at least 0, found -5")
        expect(cell).to_have_class(re.compile("invalid"))
        assert _shown(page, "#kpi-weighted_shortfall") == pytest.approx(
            ref.objectives["service"], abs=0.005)
        page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
        browser.close()
    # The refused edit's 422 is the one error Chromium logs (the page said why, above).
    assert [e for e in errors if "status of 422" not in e] == []
    outside = [u for u in requests if not u.startswith(room.base_url)]
    assert outside == []
    assert (tmp_path / "serve.png").stat().st_size > 20_000


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by .ci/run")
def test_page_shows_hostile_ids_as_text(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    case = tmp_path / "case"
    shutil.copytree(TINY.parent, case)
    hostile = "<script>alert(1)</script>"
    for name in ("sites", "staff", "targets"):
        path = case / f"{name}.csv"
        path.write_text(path.read_text().replace("A,", f'"{hostile}",').replace(
            ",A\n", f',"{hostile}"\n'))
    (case / "budgets.csv").write_text(
        'budget_id,scope,amount\n"<img src=x onerror=alert(2)>",all,1000\n')
    errors: list[str] = []
    requests: list[str] = []
    with served(case / "scenario.toml") as s, sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page()
        _watch(page, errors, requests)
        page.goto(s.url)
        page.wait_for_selector("body[data-ready=true]")
        text = page.inner_text("body")
        assert hostile in text and "<img src=x onerror=alert(2)>" in text
        # Edit the hostile site's capacity through the page: ids with markup round-trip.
        page.locator("#sites-input input[data-column=capacity_fte]").first.fill("2.5")
        page.click("#solve")
        expect(page.locator("#message")).to_have_text(re.compile("^Solved"), timeout=30_000)
        shown = _shown(page, "#kpi-weighted_shortfall"), _shown(page, "#kpi-cost")
        browser.close()
    assert errors == []
    ref = cold(tmp_path, {("sites", hostile, "capacity_fte"): 2.5}, data=case,
               scenario=case / "scenario.toml")
    assert shown[0] == pytest.approx(ref.objectives["service"], abs=0.005)
    assert shown[1] == pytest.approx(ref.plan["cost"].sum(), abs=0.5)
