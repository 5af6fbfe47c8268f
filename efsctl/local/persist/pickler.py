"""Pickling moto's models for the snapshot: what plain pickle cannot do, or should not.

- **One backend per unit.** A backend is pickled as itself only as the root of its own unit;
  any other backend it reaches (an EFS mount target keeps its subnet, which keeps its EC2
  backend) is a reference by name, so a unit stays small and, restored, points at the one live
  backend. A restored backend is filled in place: whoever held it still holds the same object.
- **Bodies and big collections live elsewhere.** An S3 bucket is pickled without its keys (each
  key is its own unit, see ``units``), a log stream without its events (appended as deltas), an
  IAM backend without the 1,500 AWS managed policies moto loads into every account (rebuilt on
  restore; only their attachment counts are kept).
- **What moto holds that pickle refuses**: locks and conditions (fresh ones on restore), weak
  dictionaries and references (rebuilt from their live contents), and ``defaultdict`` with a
  lambda factory (replaced by the built-in type the lambda returns, for empty builtin values).

The test ``tests/local/test_moto_contract.py`` round-trips a whole efsctl stack through this.
"""

from __future__ import annotations

import collections
import datetime
import importlib
import io
import pickle
import sys
import threading
import types
import uuid
import weakref
from typing import Any, Callable

PROTOCOL = 5
UID = "_efsctl_uid"                 # a bucket's or a log stream's identity across snapshots
STORE_UID = "_efsctl_bucket_uid"    # the same, on the bucket's key store
BODY = "_efsctl_body"               # an S3 key's segments (see blobs)
IAM_MARK = "__efsctl_iam__"

_ATOMS = frozenset({str, bytes, bytearray, int, float, bool, type(None), list, dict, tuple, set, frozenset,
                    datetime.datetime, datetime.date, complex})
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_MISSING = object()


def new_uid(obj: Any, attr: str = UID) -> str:
    uid = obj.__dict__.get(attr)
    if uid is None:
        uid = obj.__dict__[attr] = uuid.uuid4().hex
    return uid


# --- where backends live ---------------------------------------------------------------------------

_located: dict[type, tuple[str, str]] = {}


def locate(cls: type) -> tuple[str, str]:
    """``(module, attribute)`` of the ``BackendDict`` that makes backends of class ``cls``."""
    found = _located.get(cls)
    if found is not None:
        return found
    from moto.core.base_backend import BackendDict

    def modules():   # the class's own module and its package first, then every moto module loaded
        for module_name in (cls.__module__, cls.__module__.rsplit(".", 1)[0]):
            yield module_name, sys.modules.get(module_name) or importlib.import_module(module_name)
        yield from ((name, m) for name, m in list(sys.modules.items()) if name.startswith("moto.") and m is not None)

    for module_name, module in modules():
        for attr, value in list(vars(module).items()):
            if isinstance(value, BackendDict) and value.backend is cls:
                _located[cls] = (module_name, attr)
                return _located[cls]
    raise pickle.PicklingError(f"no BackendDict makes {cls.__module__}.{cls.__qualname__}")


def backend_dict(module: str, attr: str) -> Any:
    return getattr(importlib.import_module(module), attr)


def backend_key(backend: Any) -> tuple[str, str, str, str]:
    module, attr = locate(type(backend))
    return (module, attr, backend.account_id, backend.region_name)


# --- pickling --------------------------------------------------------------------------------------

class StatePickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, *, root: Any = None, collect: set[str] | None = None) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.root = root
        self.collect = collect

    def persistent_id(self, obj: Any) -> Any:
        kind = _kind(type(obj))
        if kind is None or obj is self.root:
            return None
        if kind == "backend":
            return ("backend", *backend_key(obj))
        if kind == "account":
            return ("account", *locate(obj.backend), obj.account_id)
        return ("backends", *locate(obj.backend))

    def reducer_override(self, obj: Any) -> Any:
        if obj is self.root:
            state = root_state(obj)
            return (_placeholder, backend_key(obj), state, None, None, _fill)
        cls = type(obj)
        reducer = _reducers.get(cls, _MISSING)
        if reducer is _MISSING:
            reducer = _reducers[cls] = _find_reducer(cls)
        if reducer is None:
            return NotImplemented
        return reducer(self, obj)


def dumps(obj: Any, *, root: Any = None, collect: set[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    StatePickler(buffer, root=root, collect=collect).dump(obj)
    return buffer.getvalue()


_kinds: dict[type, str | None] = {}


def _kind(cls: type) -> str | None:
    if cls in _ATOMS:
        return None
    found = _kinds.get(cls, _MISSING)
    if found is _MISSING:
        from moto.core.base_backend import AccountSpecificBackend, BackendDict, BaseBackend

        found = ("backend" if issubclass(cls, BaseBackend) else "account" if issubclass(cls, AccountSpecificBackend)
                 else "backends" if issubclass(cls, BackendDict) else None)
        _kinds[cls] = found
    return found  # type: ignore[return-value]


def root_state(backend: Any) -> dict[str, Any]:
    state = dict(backend.__dict__)
    from moto.iam.models import AWSManagedPolicy, IAMBackend

    if isinstance(backend, IAMBackend):
        state.pop("aws_managed_policies", None)
        state["managed_policies"] = {arn: p for arn, p in backend.managed_policies.items()
                                     if not isinstance(p, AWSManagedPolicy)}
        state[IAM_MARK] = True
    return state


_reducers: dict[type, Callable[[StatePickler, Any], Any] | None] = {}


def _find_reducer(cls: type) -> Callable[[StatePickler, Any], Any] | None:
    if cls is _LOCK_TYPES[0]:
        return lambda p, o: (threading.Lock, ())
    if cls is _LOCK_TYPES[1]:
        return lambda p, o: (threading.RLock, ())
    if issubclass(cls, threading.Condition):
        return lambda p, o: (threading.Condition, ())
    if issubclass(cls, threading.Event):
        return lambda p, o: (threading.Event, ())
    if cls is weakref.WeakValueDictionary:
        return lambda p, o: (_weak_values, (dict(o.items()),))
    if cls is weakref.WeakKeyDictionary:
        return lambda p, o: (_weak_keys, (list(o.items()),))
    if cls is weakref.WeakSet:
        return lambda p, o: (weakref.WeakSet, (list(o),))
    if cls is weakref.ReferenceType:
        return lambda p, o: (_weakref, (o(),))
    if issubclass(cls, collections.defaultdict):
        return _defaultdict
    from moto.iam.models import AWSManagedPolicy
    from moto.logs.models import LogStream
    from moto.s3.models import FakeBucket, FakeKey

    if issubclass(cls, FakeBucket):
        return _bucket
    if issubclass(cls, LogStream):
        return _stream
    if issubclass(cls, AWSManagedPolicy):
        return lambda p, o: (_aws_policy, (o.account_id, o.arn), {"attachment_count": o.attachment_count})
    if issubclass(cls, FakeKey):
        return _key
    return None


def _importable(fn: Any) -> bool:
    qualname = getattr(fn, "__qualname__", "")
    if "<" in qualname or isinstance(fn, types.MethodType):
        return False
    try:
        obj: Any = importlib.import_module(fn.__module__)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj is fn
    except (AttributeError, ImportError, TypeError):
        return False


def _defaultdict(pickler: StatePickler, obj: collections.defaultdict) -> Any:
    factory = obj.default_factory
    if factory is None or _importable(factory):
        return NotImplemented
    sample = factory()
    if type(sample) not in (dict, list, set, int, float, str) or sample:
        raise pickle.PicklingError(f"a defaultdict whose factory {factory!r} makes {sample!r} cannot be saved")
    return (collections.defaultdict, (type(sample),), None, None, iter(obj.items()))


def _bucket(pickler: StatePickler, bucket: Any) -> Any:
    uid = new_uid(bucket)
    bucket.keys.__dict__.setdefault(STORE_UID, uid)
    state = dict(bucket.__dict__)
    state.pop("keys", None)
    return (_restore_bucket, (type(bucket), uid), state)


def _stream(pickler: StatePickler, stream: Any) -> Any:
    uid = new_uid(stream)
    state = dict(stream.__dict__)
    state.pop("events", None)
    return (_restore_stream, (type(stream), uid), state)


def _key(pickler: StatePickler, key: Any) -> Any:
    if pickler.collect is not None:
        pickler.collect.update(name for name, _, _ in key.__dict__.get(BODY, ()) if isinstance(name, str))
    return NotImplemented


# --- unpickling ------------------------------------------------------------------------------------

class Restorer:
    """What a restore builds up across units: the backends it filled, and the shared pieces units
    refer to by identity (key stores, event lists, the fresh AWS managed policies)."""

    def __init__(self) -> None:
        self.key_stores: dict[str, Any] = {}
        self.event_lists: dict[str, list[Any]] = {}
        self.streams: dict[str, Any] = {}
        self.placeholders: set[tuple[str, str, str, str]] = set()
        self.filled: set[tuple[str, str, str, str]] = set()
        self._policies: dict[str, dict[str, Any]] = {}

    def backend(self, module: str, attr: str, account: str, region: str) -> Any:
        account_backends = backend_dict(module, attr)[account]
        found = dict.get(account_backends, region)
        if found is None:
            cls = account_backends.backend
            found = cls.__new__(cls)
            dict.__setitem__(account_backends, region, found)
            self.placeholders.add((module, attr, account, region))
        return found

    def key_store(self, uid: str) -> Any:
        store = self.key_stores.get(uid)
        if store is None:
            from moto.s3.utils import _VersionedKeyStore

            store = self.key_stores[uid] = _VersionedKeyStore()
            store.__dict__[STORE_UID] = uid
        return store

    def events(self, uid: str) -> list[Any]:
        return self.event_lists.setdefault(uid, [])

    def aws_policies(self, account: str) -> dict[str, Any]:
        found = self._policies.get(account)
        if found is None:
            from moto.iam.models import IAMBackend

            fresh = IAMBackend._init_aws_policies(types.SimpleNamespace(account_id=account, region_name="aws"))
            found = self._policies[account] = {p.arn: p for p in fresh}
        return found

    def unfilled(self) -> list[tuple[str, str, str, str]]:
        return sorted(self.placeholders - self.filled)


_current: Restorer | None = None


def current() -> Restorer:
    if _current is None:
        raise pickle.UnpicklingError("local cloud state is restored only inside a restore")
    return _current


def restoring(restorer: Restorer | None) -> None:
    global _current
    _current = restorer


class StateUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        kind, *rest = pid
        if kind == "backend":
            return current().backend(*rest)
        if kind == "account":
            module, attr, account = rest
            return backend_dict(module, attr)[account]
        if kind == "backends":
            return backend_dict(*rest)
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


def loads(data: bytes) -> Any:
    return StateUnpickler(io.BytesIO(data)).load()


def _placeholder(module: str, attr: str, account: str, region: str) -> Any:
    restorer = current()
    found = restorer.backend(module, attr, account, region)
    restorer.filled.add((module, attr, account, region))
    return found


def _fill(obj: Any, state: dict[str, Any]) -> None:
    iam = state.pop(IAM_MARK, False)
    obj.__dict__.clear()
    obj.__dict__.update(state)
    if iam:
        fresh = current().aws_policies(obj.account_id)
        obj.aws_managed_policies = list(fresh.values())
        obj.managed_policies = {**fresh, **state["managed_policies"]}


def _restore_bucket(cls: type, uid: str) -> Any:
    bucket = cls.__new__(cls)
    bucket.__dict__["keys"] = current().key_store(uid)
    return bucket


def _restore_stream(cls: type, uid: str) -> Any:
    restorer = current()
    stream = cls.__new__(cls)
    stream.__dict__["events"] = restorer.events(uid)
    restorer.streams[uid] = stream
    return stream


def _aws_policy(account: str, arn: str) -> Any:
    try:
        return current().aws_policies(account)[arn]
    except KeyError:
        raise pickle.UnpicklingError(f"AWS managed policy {arn} is not in this moto") from None


def _weak_values(items: dict[Any, Any]) -> weakref.WeakValueDictionary:
    return weakref.WeakValueDictionary(items)


def _weak_keys(items: list[tuple[Any, Any]]) -> weakref.WeakKeyDictionary:
    return weakref.WeakKeyDictionary(items)


class _Gone:
    pass


def _weakref(target: Any) -> weakref.ReferenceType:
    if target is None:
        target = _Gone()   # dead once this returns, as it was when saved
    return weakref.ref(target)
