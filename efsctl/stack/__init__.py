"""The stack engine: model -> observe -> plan -> execute.

- :mod:`~efsctl.stack.model`: the desired stack as data (``desired_stack(StackConfig)``), pure.
- :mod:`~efsctl.stack.observe`: what exists, found by tag or deterministic name; describe only.
- :mod:`~efsctl.stack.drift` and :mod:`~efsctl.stack.plan`: desired vs observed, pure.
- :mod:`~efsctl.stack.execute` with :mod:`~efsctl.stack.steps`: the only code that mutates.
- :mod:`~efsctl.stack.deploy`: the pipeline `up` runs (``preview`` stops after the plan).
- :mod:`~efsctl.stack.package`: the handlers' reproducible zip.
"""
