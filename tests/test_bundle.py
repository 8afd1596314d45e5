"""solve --bundle and allocator replay, through the CLI: the bundle holds what the run read
(checked against the CSV files and the run's own hashes), each stage's MPS solves by itself
to the stage's optimum, and a replay reproduces the plan byte for byte, or says which
versions differ and whether the optimum still matches."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from allocator.store.record import versions
from tests.conftest import TINY, run_cli, run_cli_fresh

QUICK = ("--set", "output.sensitivity=false", "--set", "output.report=false", "--no-store")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "run"
    done = run_cli("solve", TINY, "--bundle", *QUICK, out=out)
    assert done.code == 0, done.stderr
    return out


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore
                if m.isfile()}


def _rewrite(bundle: Path, target: Path, change: dict[str, bytes]) -> None:
    files = {**_members(bundle), **change}
    with tarfile.open(target, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_the_bundle_holds_what_the_run_read(bundled: Path) -> None:
    files = _members(bundled / "bundle.tar.gz")
    summary = json.loads((bundled / "summary.json").read_text())
    manifest = json.loads(files["manifest.json"])
    assert {"scenario.toml", "replay.toml", "models/1-service.mps", "models/2-cost.mps",
            "expected/plan.csv"} <= set(files)
    assert files["scenario.toml"] == TINY.read_bytes()
    assert manifest["versions"] == versions() and manifest["seed"] == 0
    for name, table in summary["inputs"].items():
        assert manifest["inputs"][name]["sha256_16"] == table["sha256_16"]
        assert manifest["inputs"][name]["snapshot_matches"] is True
        # The snapshot is the file's cells as text, checked against the CSV itself.
        snap = pd.read_parquet(io.BytesIO(files[f"tables/{name}.parquet"]))
        csv = pd.read_csv(TINY.parent / f"{name}.csv", dtype=str)
        pd.testing.assert_frame_equal(snap.astype(object).where(snap.notna(), None),
                                      csv.astype(object).where(csv.notna(), None))
    assert files["expected/plan.csv"] == (bundled / "plan.csv").read_bytes()


def test_each_stage_mps_solves_to_the_stage_optimum(bundled: Path, tmp_path: Path) -> None:
    """Read back by HiGHS and solved on its own, each stage's model gives the optimum the
    run reported for that stage (the cost stage holds service within its tolerance)."""
    import highspy

    files = _members(bundled / "bundle.tar.gz")
    summary = json.loads((bundled / "summary.json").read_text())
    for name, stage in (("1-service", "service"), ("2-cost", "cost")):
        path = tmp_path / f"{name}.mps"
        path.write_bytes(files[f"models/{name}.mps"])
        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.readModel(str(path))
        highs.run()
        assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        found = highs.getInfo().objective_function_value
        assert found == pytest.approx(summary["objectives"][stage], rel=1e-7, abs=1e-7)


@pytest.mark.slow
def test_replay_reproduces_the_plan_byte_for_byte(bundled: Path, tmp_path: Path) -> None:
    # a fresh interpreter: its own hash seed, as a replay on another day would have
    done = run_cli_fresh("replay", bundled / "bundle.tar.gz", out=tmp_path / "again")
    assert done.code == 0, done.stderr
    assert "replay: plan reproduced exactly" in done.stdout
    assert "versions: the same as the bundle's" in done.stdout
    for name in ("plan.csv", "coverage.csv", "budgets.csv", "sites.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (bundled / name).read_bytes()
    before = json.loads((bundled / "summary.json").read_text())
    after = json.loads((tmp_path / "again" / "summary.json").read_text())
    # The tables read from the bundle's Parquet hash as the CSV files did.
    assert {k: v["sha256_16"] for k, v in after["inputs"].items()} == \
        {k: v["sha256_16"] for k, v in before["inputs"].items()}
    assert after["objectives"] == before["objectives"]


def test_other_versions_are_named_and_the_optimum_compared(bundled: Path,
                                                           tmp_path: Path) -> None:
    files = _members(bundled / "bundle.tar.gz")
    manifest = json.loads(files["manifest.json"])
    manifest["versions"]["highspy"] = "0.0.1"
    older = tmp_path / "older.tar.gz"
    _rewrite(bundled / "bundle.tar.gz", older,
             {"manifest.json": json.dumps(manifest).encode()})
    done = run_cli("replay", older, "--json", out=tmp_path / "again")
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["versions_differ"] == {"highspy": ["0.0.1", versions()["highspy"]]}
    assert report["optimum_matches"] is True and report["identical"] is True


@pytest.mark.slow
def test_the_scenario_setting_bundles_too(tmp_path: Path) -> None:
    done = run_cli("solve", TINY, *QUICK, "--set", "output.bundle=true", out=tmp_path / "run")
    assert done.code == 0, done.stderr
    replay = _members(tmp_path / "run" / "bundle.tar.gz")["replay.toml"].decode()
    assert "bundle" not in replay  # the replay does not bundle again


def test_an_altered_bundle_is_refused(bundled: Path, tmp_path: Path) -> None:
    altered = tmp_path / "altered.tar.gz"
    _rewrite(bundled / "bundle.tar.gz", altered,
             {"tables/budgets.parquet": _members(bundled / "bundle.tar.gz")
              ["tables/staff.parquet"]})
    done = run_cli("replay", altered, out=tmp_path / "again")
    assert done.code == 2 and "tables/budgets.parquet" in done.stderr
    assert not (tmp_path / "again").exists()
    done = run_cli("replay", tmp_path / "nothing.tar.gz", out=tmp_path / "again")
    assert done.code == 2


def test_a_warm_started_run_replays_from_its_warm_start(bundled: Path, tmp_path: Path) -> None:
    out = tmp_path / "warm"
    done = run_cli("solve", TINY, "--bundle", "--warm-from", bundled, *QUICK, out=out)
    assert done.code == 0, done.stderr
    assert "warm/basis.parquet" in _members(out / "bundle.tar.gz")
    done = run_cli("replay", out, out=tmp_path / "again")
    assert done.code == 0 and "plan reproduced exactly" in done.stdout, done.stdout
