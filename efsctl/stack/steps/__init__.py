"""One step per resource kind: how to create it, converge it, wait until it is ready, delete it.

:data:`STEPS` is the default dispatch table, kind -> :class:`~efsctl.stack.steps.base.Step`; the
executor takes the table as a parameter, so tests can run a plan with steps of their own. It
holds the model's kinds and the ones a teardown adds (``detach``, ``enis``, ``sg-rule``).
"""

from __future__ import annotations

from efsctl.stack.steps import api, compute, network, storage
from efsctl.stack.steps.base import Step, StepContext

STEPS: dict[str, Step] = {**network.STEPS, **storage.STEPS, **compute.STEPS, **api.STEPS}

__all__ = ["STEPS", "Step", "StepContext"]
