"""Make moto's server start fast: a cold ``up --local`` has three seconds in all.

None of this changes what moto answers for this stack; each trims work moto does at import or
at a backend's first use:

- the EC2 module's import builds three ``boto3.Session()`` just to list regions, each loading
  botocore's endpoint data again: one shared session serves them all;
- every service backend, when first used, lists its regions through botocore, which loads that
  service's whole API model (API Gateway's alone takes a third of a second): the regions of all
  partitions, read once from the endpoint data, serve every service;
- EC2 loads 1,300 default AMIs (each with a snapshot volume) that this stack never uses;
- moto loads each botocore API model through a new loader, and maps package names to service
  names through a new session, each scanning botocore's data directory again: one loader and
  one session serve every call (the models loaded stay cached, as moto caches them anyway).

The contract test checks the internals touched here.
"""

from __future__ import annotations

import functools
import os
from typing import Any


def configure_moto() -> None:
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    from moto.core.config import default_user_config

    default_user_config["iam"]["load_aws_managed_policies"] = True


@functools.lru_cache(maxsize=1)
def all_regions() -> tuple[str, ...]:
    from moto.core.base_backend import AccountSpecificBackend

    loader = AccountSpecificBackend.get_session()._session.get_component("data_loader")
    endpoints = loader.load_data("endpoints")
    return tuple(region for partition in endpoints["partitions"] for region in partition["regions"])


def _regions(self: Any, service_name: str) -> list[str]:
    return list(all_regions())


def fast_moto_import() -> None:
    """Import moto's EC2 models with one shared botocore session; list regions without API models;
    share one model loader and one session."""
    import boto3

    import moto.core.utils
    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.loaders import create_loader

    AccountSpecificBackend._generate_regions = _regions
    moto.core.utils.create_loader = functools.lru_cache(maxsize=1)(create_loader)
    shared = AccountSpecificBackend.get_session()
    moto.core.utils.Session = lambda: shared._session
    original = boto3.Session
    boto3.Session = lambda *a, **k: shared if not a and not k else original(*a, **k)  # type: ignore[misc]
    try:
        import moto.ec2.models  # noqa: F401
    finally:
        boto3.Session = original  # type: ignore[misc]
