"""Durability: what the cloud acknowledged survives a crash, as AWS keeps what it acknowledged.

moto keeps everything in memory. These hooks tell the persister (``efsctl.local.persist``) what
changed, so each commit saves only that:

- every backend a changing request reaches (``AccountSpecificBackend.__getitem__`` is the one
  door to a service's backend), and every backend created, whoever created it;
- every S3 key written or removed (the methods of a bucket's ``_VersionedKeyStore``; buckets get
  a stable uid so their keys can be saved apart from them);
- every log stream that received events (``LogStream.put_log_events``), and the logs backend
  when a group or stream appears outside a request (the Lambda runtime's log sink);
- S3's empty tag sets are not kept (moto stores one per object, which would make the S3
  backend grow with every object; an absent entry reads the same);
- every request looks its access key up in IAM (``mark_account_as_visited``, which also notes
  when a key was last used): that does not count as changing IAM, or every call would save it.

The fidelity layer's own state is registered as extras: the timeline of due transitions (see
``timeline``), whose work is made of module functions so it can be saved, and S3's sequencer.
"""

from __future__ import annotations

from typing import Any, Callable

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.timeline import timeline
from efsctl.local.persist.pickler import STORE_UID, UID, new_uid


def install(ctx: PatchContext, patcher: Patcher) -> None:
    persist = ctx.persist
    if persist is None:
        return
    import moto.iam.models as iam_models
    from moto.core.base_backend import AccountSpecificBackend
    from moto.logs.models import LogGroup, LogStream, logs_backends
    from moto.s3.models import FakeBucket, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    def wrap_getitem(original: Callable[..., Any]) -> Callable[..., Any]:
        def __getitem__(self: Any, region_name: str) -> Any:
            existed = dict.__contains__(self, "aws" if region_name == "global" else region_name)
            backend = original(self, region_name)
            if existed:
                persist.reached_backend(backend)
            else:
                persist.touch_backend(backend)
            return backend
        return __getitem__

    def key_hook(original: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            result = original(self, key, *args, **kwargs)
            uid = self.__dict__.get(STORE_UID)
            if uid is not None:
                persist.touch_key(uid, key, self)
            return result
        return method

    def wrap_bucket_init(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            self.keys.__dict__[STORE_UID] = new_uid(self)
        return __init__

    def logs_backend_of(account_id: str, region: str) -> Any:
        return dict.get(logs_backends[account_id], region)

    def wrap_created(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            new_uid(self, UID)
            backend = logs_backend_of(self.account_id, self.region)
            if backend is not None:
                persist.touch_backend(backend)
        return __init__

    def wrap_put_log_events(original: Callable[..., Any]) -> Callable[..., Any]:
        def put_log_events(self: Any, log_events: list[dict[str, Any]]) -> str:
            token = original(self, log_events)
            persist.touch_stream(self)
            return token
        return put_log_events

    def wrap_tagging(original: Callable[..., Any]) -> Callable[..., Any]:
        def put_object_tagging(self: Any, key: Any, tags: dict[str, str] | None) -> Any:
            result = original(self, key, tags)
            if self.tagger.tags.get(key.arn) == {}:
                del self.tagger.tags[key.arn]
            return result
        return put_object_tagging

    def delitem(self: Any, key: str) -> None:
        dict.__delitem__(self, key)

    def wrap_visited(original: Callable[..., Any]) -> Callable[..., Any]:
        def mark_account_as_visited(*args: Any, **kwargs: Any) -> None:
            with persist.tracker.untracked():
                return original(*args, **kwargs)
        return mark_account_as_visited

    patcher.wrap(AccountSpecificBackend, "__getitem__", wrap_getitem)
    patcher.wrap(_VersionedKeyStore, "__setitem__", key_hook)
    patcher.wrap(_VersionedKeyStore, "setlist", key_hook)
    patcher.wrap(_VersionedKeyStore, "pop", key_hook)
    patcher.replace(_VersionedKeyStore, "__delitem__", key_hook(delitem))
    patcher.wrap(FakeBucket, "__init__", wrap_bucket_init)
    patcher.wrap(LogGroup, "__init__", wrap_created)
    patcher.wrap(LogStream, "__init__", wrap_created)
    patcher.wrap(LogStream, "put_log_events", wrap_put_log_events)
    patcher.wrap(S3Backend, "put_object_tagging", wrap_tagging)
    patcher.wrap(iam_models, "mark_account_as_visited", wrap_visited)

    line = timeline(ctx)
    line.on_change = lambda: persist.touch_extra("timeline")
    line.around_work = persist.tracker.tracked
    persist.register("timeline", line.saved, line.restore)


PATCH = Patch(
    name="persistence",
    summary="changes reported to the persister (backends reached or made, S3 keys, log events); empty tag sets dropped",
    targets=(
        Target("moto.core.base_backend:AccountSpecificBackend.__getitem__", ("self", "region_name")),
        Target("moto.s3.utils:_VersionedKeyStore.__setitem__", ("self", "key", "value")),
        Target("moto.s3.utils:_VersionedKeyStore.setlist", ("self", "key", "list_")),
        Target("moto.s3.utils:_VersionedKeyStore.pop", ("self", "key")),
        Target("moto.s3.models:FakeBucket.__init__", ("self", "name", "account_id", "region_name", "bucket_namespace")),
        Target("moto.logs.models:LogGroup.__init__", ("self", "account_id", "region", "name", "kwargs")),
        Target("moto.logs.models:LogStream.__init__", ("self", "log_group", "name")),
        Target("moto.logs.models:LogStream.put_log_events", ("self", "log_events")),
        Target("moto.logs.models:LogEvent.__init__", ("self", "ingestion_time", "log_event")),
        Target("moto.s3.models:S3Backend.put_object_tagging", ("self", "key", "tags")),
        Target("moto.utilities.tagging_service:TaggingService.tag_resource", ("self", "arn", "tags")),
        Target("moto.iam.models:IAMBackend._init_aws_policies", ("self",)),
        Target("moto.iam.models:mark_account_as_visited", ("account_id", "access_key", "service", "region")),
        Target("moto.iam.models:AWSManagedPolicy"),
        Target("moto.core.model_instances:model_data"),
    ),
    install=install,
)
