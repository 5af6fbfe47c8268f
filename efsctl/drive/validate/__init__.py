"""``efsctl validate``: the seed's claims, each one an experiment on the deployed stack.

1. event-driven (:mod:`.events`), 2. shared state over a REST API (:mod:`.shared`),
3. concurrent access (:mod:`.concurrency`), 4. atomic operations (:mod:`.atomic`),
5. persistence (:mod:`.persistence`), 6. least privilege (:mod:`.privilege`).

Each is a plain function over the drive API (the upload, wait and predict code the commands
use) returning a :class:`~.core.ClaimResult`: PASS or FAIL with its figures, or "not measured"
with the reason. :func:`~.runner.run_validation` runs the selected ones and removes what they
wrote (:mod:`.cleanup`); :mod:`.report` writes the HTML page. What the experiments need from the
use cases (the local cloud's restart and IAM report) comes in through :class:`~.core.Stack`.
"""
