"""Formulations by scenario `model` name: one package each (`ops/`, `assignment/`, `network/`,
`funding/`), whose `__init__` holds the plugin class the pipeline sees.

A package is imported when its model is first used, so a run of one model does not load the
others' dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from allocator.errors import InputError
from allocator.formulations.base import Formulation

PLUGINS = {
    "ops": ("allocator.formulations.ops", "OpsFormulation"),
    "assignment": ("allocator.formulations.assignment", "AssignmentFormulation"),
    "network": ("allocator.formulations.network", "NetworkFormulation"),
    "funding": ("allocator.formulations.funding", "FundingFormulation"),
}


def get_formulation(name: str, source: str = "scenario") -> Formulation[Any, Any]:
    if name not in PLUGINS:
        raise InputError(f"model '{name}' is not available; known: {', '.join(PLUGINS)}",
                         source)
    module, cls = PLUGINS[name]
    plugin: type[Formulation[Any, Any]] = getattr(importlib.import_module(module), cls)
    return plugin()
