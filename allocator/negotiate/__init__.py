"""Budget negotiations: a scenario kept solvable under edits (session), sweeps of inputs on
Dask, exact parametric curves of each stage's optimum, and Pareto frontiers (docs/negotiate.md).
"""
