"""One HiGHS method on the first stage of a scenario's LP: the measurement behind `auto`.

    python benchmarks/methods.py SCENARIO.toml [--method simplex|ipm|pdlp] [--time-limit S]

Builds the allocator's model, hands it to highspy with the first stage's objective, runs the
method once on one thread and prints status, process CPU seconds, iterations, and the model's
longest row and coupling-row count (what `method = "auto"` decides by).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--method", default="simplex", choices=["simplex", "ipm", "pdlp"])
    parser.add_argument("--time-limit", type=float, default=600.0)
    args = parser.parse_args()

    from allocator.run import prepare
    from allocator.solvers.highs import coupling_rows, load_into_highs, new_highs
    from allocator.solvers.lexicographic import stage_objectives

    scenario, built, _times = prepare(args.scenario, [])
    model = built.model
    first = stage_objectives(model, scenario.objective.order, scenario.objective.mode,
                             dict(scenario.objective.weights))[0]
    highs = new_highs()
    load_into_highs(highs, model, first.c)
    for key, value in (("solver", args.method), ("threads", 1),
                       ("time_limit", args.time_limit)):
        highs.setOptionValue(key, value)
    start = time.process_time()
    highs.run()
    seconds = time.process_time() - start
    info = highs.getInfo()
    lengths = np.diff(model.matrix.indptr)
    print(f"{args.scenario}: {model.num_rows:,} rows, {model.num_vars:,} columns, "
          f"longest row {lengths.max():,}, coupling rows {coupling_rows(model)}")
    print(f"{args.method}: {highs.getModelStatus().name}, {seconds:.1f} CPU s, "
          f"{info.simplex_iteration_count} simplex / {info.ipm_iteration_count} ipm "
          f"iterations, objective {info.objective_function_value:.10g}")


if __name__ == "__main__":
    main()
