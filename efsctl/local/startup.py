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
  one session serve every call (the models loaded stay cached, as moto caches them anyway);
- every request looks its access key up in the IAM backend of *every* partition, creating six
  IAM backends that each parse the 1,582 AWS managed policies: only backends that exist can hold
  a key, so only those are searched (the ``aws`` partition's still loads the policies);
- the HTTP API (v2) is served by moto's API Gateway app, whose v1 module imports
  ``openapi_spec_validator`` (a third of a second) only to validate imported OpenAPI documents:
  stand-in modules defer that import to the first such validation.

The contract test checks the internals touched here.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import types
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


def _get_account_id_from(access_key: str) -> str:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    for account_id, account in list(iam_backends.items()):
        # Existing backends only (a new one holds no keys), read as a plain dict: looking a key
        # up is not a change to IAM, which the persister would otherwise save with the request.
        for backend in list(dict.values(account)):
            if access_key in backend.access_keys:
                return account_id
    return DEFAULT_ACCOUNT_ID


OPENAPI_STAND_INS = ("openapi_spec_validator", "openapi_spec_validator.validation",
                     "openapi_spec_validator.validation.exceptions")
_openapi_lock = threading.Lock()


class OpenAPIValidationError(Exception):
    """Stands for openapi_spec_validator's error: carries the real one and answers for it."""

    def __init__(self, real: BaseException) -> None:
        super().__init__(str(real))
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _real_openapi() -> tuple[Any, type[Exception]]:
    with _openapi_lock:
        for name in OPENAPI_STAND_INS:
            if getattr(sys.modules.get(name), "__efsctl_stand_in__", False):
                del sys.modules[name]
        import openapi_spec_validator
        from openapi_spec_validator.validation.exceptions import OpenAPIValidationError as RealError

        return openapi_spec_validator, RealError


def _validate(*args: Any, **kwargs: Any) -> Any:
    real, real_error = _real_openapi()
    try:
        return real.validate(*args, **kwargs)
    except real_error as exc:
        raise OpenAPIValidationError(exc) from exc


def defer_openapi_validator() -> None:
    if "openapi_spec_validator" in sys.modules:
        return
    modules = {name: types.ModuleType(name) for name in OPENAPI_STAND_INS}
    for module in modules.values():
        module.__efsctl_stand_in__ = True  # type: ignore[attr-defined]
    modules["openapi_spec_validator"].validate = _validate  # type: ignore[attr-defined]
    modules["openapi_spec_validator.validation.exceptions"].OpenAPIValidationError = OpenAPIValidationError  # type: ignore[attr-defined]
    sys.modules.update(modules)


def fast_moto_import() -> None:
    """Apply the shortcuts above, then import moto's EC2 models with one shared botocore session."""
    import boto3

    import moto.core.utils
    import moto.iam.models
    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.loaders import create_loader

    AccountSpecificBackend._generate_regions = _regions
    moto.iam.models.get_account_id_from = _get_account_id_from
    defer_openapi_validator()
    moto.core.utils.create_loader = functools.lru_cache(maxsize=1)(create_loader)
    shared = AccountSpecificBackend.get_session()
    moto.core.utils.Session = lambda: shared._session
    original = boto3.Session
    boto3.Session = lambda *a, **k: shared if not a and not k else original(*a, **k)  # type: ignore[misc]
    try:
        import moto.ec2.models  # noqa: F401
    finally:
        boto3.Session = original  # type: ignore[misc]
