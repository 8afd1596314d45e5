"""The formulations beyond ops (spec/more-models.md), collected for `get_formulation`.

Each lives in its own module (assignment, network, funding) so that a reader holds one model
at a time; this module only names them.
"""

from __future__ import annotations

from allocator.formulations.assignment import AssignmentFormulation
from allocator.formulations.base import Formulation
from allocator.formulations.funding import FundingFormulation
from allocator.formulations.network import NetworkFormulation

MORE_FORMULATIONS: dict[str, type[Formulation]] = {
    "assignment": AssignmentFormulation,
    "network": NetworkFormulation,
    "funding": FundingFormulation,
}
