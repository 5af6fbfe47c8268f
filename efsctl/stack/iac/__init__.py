"""The stack as infrastructure as code: a CloudFormation template or a Terraform configuration.

Both are rendered from the desired-stack model `up` deploys (``efsctl.stack.model``), through
one mapping per resource kind per format (:mod:`.cloudformation`, :mod:`.terraform`), over the
format-neutral layer in :mod:`.mapping`. :mod:`.output` writes them, with the handlers' zip and
a README, into a directory. Pure: no AWS call, no network, nothing deployed.
"""

FORMATS = ("cloudformation", "terraform")
