"""Regional decomposition: Dantzig-Wolfe over blocks found in the model, on Dask.

See docs/decompose.md. `solve_decomposed` is the entry point (a `SolveResult` like the
monolithic `solve_stages`); `find_blocks` finds the linking rows and blocks.
"""

from allocator.decompose.blocks import Partition, find_blocks
from allocator.decompose.solve import Decomposition, solve_decomposed

__all__ = ["Decomposition", "Partition", "find_blocks", "solve_decomposed"]
