"""Moved to allocator.solvers.lexicographic (stage solving is solving, not analysis); this
name stays for one release so that scripts importing it keep working."""

from allocator.solvers.lexicographic import (  # noqa: F401
    SolveResult,
    StageResult,
    solve_stages,
    stage_objectives,
)
