"""Formulations by scenario `model` name."""

from __future__ import annotations

from allocator.errors import InputError
from allocator.formulations.base import Formulation


def get_formulation(name: str, source: str = "scenario") -> Formulation:
    # Imported here so that each formulation's dependencies load only when it is used.
    from allocator.formulations.ops import OpsFormulation

    registry: dict[str, type[Formulation]] = {"ops": OpsFormulation}
    try:
        from allocator.formulations.more import MORE_FORMULATIONS
    except ImportError:  # pragma: no cover - the other formulations are optional modules
        MORE_FORMULATIONS = {}
    registry.update(MORE_FORMULATIONS)
    if name not in registry:
        raise InputError(f"model '{name}' is not available; known: {', '.join(registry)}",
                         source)
    return registry[name]()
