"""Write a generated ops instance (five CSV tables and a scenario.toml) into a folder.

Why a script: benchmarks and bug reports need the same instance on another machine, and
"size + seed" is all it takes to rebuild one.

    python data/generate.py --size medium --seed 0 --out runs/gen/medium
    python data/generate.py --staff 5000 --seed 3 --out /tmp/ops-5k
    allocator solve runs/gen/medium/scenario.toml --out runs/medium
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a source tree without installing the package
    sys.path.insert(0, str(ROOT))

from allocator.datagen import SIZES, generate_ops, write_ops_instance  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--size", choices=list(SIZES), help="a preset: " + ", ".join(
        f"{name}={n:,} staff" for name, n in SIZES.items()))
    size.add_argument("--staff", type=int, metavar="N", help="any number of staff rows")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same tables (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--name", help="scenario name (default: <size>-seed<seed>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate, write, and print what was written."""
    parser = _parser()
    args = parser.parse_args(argv)
    n_staff = SIZES[args.size] if args.size else args.staff
    if n_staff < 1:
        parser.error(f"--staff must be at least 1, got {n_staff}")
    name = args.name or f"{args.size or f'{n_staff}-staff'}-seed{args.seed}"
    start = time.perf_counter()
    tables = generate_ops(n_staff, seed=args.seed)
    scenario = write_ops_instance(tables, args.out, name=name)
    rows = ", ".join(f"{len(frame):,} {table}" for table, frame in tables.items())
    print(f"{scenario}  ({rows}; {time.perf_counter() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
