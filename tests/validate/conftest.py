"""A local stack for the validation tests (one per test module), and efsctl run in-process on it."""

from __future__ import annotations

import stackrun


class Efsctl(stackrun.Efsctl):
    """Runs efsctl in-process against one home and stack; ``client`` is the account's."""

    def client(self, service):
        return self.connection().aws.client(service)

    def efs_root(self):
        return next(self.home.glob(f"local/{self.stack}/efs/*/lambda"))


def local_stack(tmp_path_factory, stack):
    with stackrun.local_stack(Efsctl(tmp_path_factory.mktemp(f"efsctl-{stack}"), stack)) as run:
        yield run
