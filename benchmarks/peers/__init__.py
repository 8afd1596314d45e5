"""The ops service-stage LP written idiomatically in other modelling layers, for comparison.

Each module builds the same LP as the allocator's service stage (every constraint family,
objective: weighted shortfall) from the floor's index sets (`floor.eligible`: integer codes,
not strings; the sets step is timed on its own), and exposes:

- ``build(sets)``: the modelling layer's own model object;
- ``hand_over(model)``: the solver object, loaded (for pyoframe, building already loads the
  solver, so this returns what `build` made);
- ``solve(handle)``: run HiGHS, return the service objective.
"""

PEERS = ("linopy", "pyoframe", "pulp")
