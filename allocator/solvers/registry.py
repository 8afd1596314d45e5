"""Solver names to backends, and the capability check that runs before any hand-over."""

from __future__ import annotations

from allocator.core.model import LinearModel
from allocator.errors import CapabilityError
from allocator.solvers.base import Backend, Capability, SolverSettings
from allocator.solvers.cpsat import CpSatBackend
from allocator.solvers.highs import HighsBackend
from allocator.solvers.ortools_backend import GlopBackend, PdlpBackend, ScipBackend
from allocator.solvers.pulp_backend import PulpBackend, pulp_backend_for

BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (HighsBackend, GlopBackend, PdlpBackend, ScipBackend, CpSatBackend, PulpBackend)
}


def _with(capability: Capability) -> list[str]:
    return [name for name, cls in BACKENDS.items() if capability in cls.capabilities]


def backend_class(name: str) -> type[Backend]:
    key = name.strip()
    if key.lower().startswith("pulp:"):
        return pulp_backend_for(key.split(":", 1)[1])
    if key.lower() in BACKENDS:
        return BACKENDS[key.lower()]
    import difflib

    close = difflib.get_close_matches(key.lower(), list(BACKENDS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise CapabilityError(
        f"unknown solver '{name}'{hint} Known: {', '.join(BACKENDS)}, or pulp:<NAME> for any "
        "solver PuLP reaches", "solver.name",
    )


# What a scenario can change to turn its model into an LP or a MIP, by formulation
# (LinearModel.name); a model not named here is told the solvers only.
_TO_LP = {"ops": 'or set policy.assignment = "fractional"',
          "funding": "or make every response curve concave (policy.allow_nonconcave = false) "
                     "and no program whole"}
_TO_MIP = {"ops": 'or set policy.assignment = "whole"'}


def check_capabilities(cls: type[Backend], model: LinearModel) -> None:
    """Refuse a model the backend cannot solve, naming the backends that can (and, where the
    model's own settings can change its kind, that setting)."""
    if model.num_integer and Capability.INTEGER not in cls.capabilities:
        hint = _TO_LP.get(model.name, "")
        raise CapabilityError(
            f"{cls.display} solves linear programs only, and this {model.name} model has "
            f"{model.num_integer} integer variables. Use one of: "
            f"{', '.join(_with(Capability.INTEGER))}" + (f"; {hint}." if hint else "."),
            "solver.name",
        )
    if model.num_integer == 0 and Capability.CONTINUOUS not in cls.capabilities:
        hint = _TO_MIP.get(model.name, "")
        raise CapabilityError(
            f"{cls.display} is an integer solver and this {model.name} model is a pure LP. "
            f"Use one of: {', '.join(_with(Capability.CONTINUOUS))}"
            + (f"; {hint}." if hint else "."), "solver.name",
        )


def ignored_settings(cls: type[Backend], settings: SolverSettings,
                     model: LinearModel) -> list[str]:
    """Settings this backend cannot honour: said in the run's notes, not dropped silently."""
    notes = []
    if settings.method not in cls.methods:
        notes.append(f"solver.method = '{settings.method}' is not a method of {cls.display}; "
                     f"it uses its own (honoured here: {', '.join(sorted(cls.methods))})")
    caps = cls.capabilities
    if settings.threads > 1 and Capability.THREADS not in caps:
        notes.append(f"solver.threads = {settings.threads} is ignored: {cls.display} runs on "
                     "one thread here")
    if settings.seed != 0 and Capability.SEED not in caps:
        notes.append(f"solver.seed = {settings.seed} is ignored: {cls.display} takes no seed")
    if (model.num_integer and settings.mip_gap is not None
            and Capability.MIP_GAP not in caps):
        notes.append(f"solver.mip_gap = {settings.mip_gap:g} is ignored by {cls.display}")
    return notes


def make_backend(name: str, settings: SolverSettings, model: LinearModel) -> Backend:
    cls = backend_class(name)
    check_capabilities(cls, model)
    ok, detail = cls.is_available()
    if not ok:
        raise CapabilityError(f"{cls.display} is not available here: {detail}", "solver.name")
    backend = cls(settings)
    backend.notes.extend(ignored_settings(cls, settings, model))
    return backend
