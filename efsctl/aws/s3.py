"""The stack's S3 bucket: creation, public access block, encryption, policy, tags, notification."""

from __future__ import annotations

import json
from typing import Any, Mapping

from efsctl.aws.errors import attempt, aws_call, error_code, is_code
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext
from efsctl.aws.tags import tag_dict, tag_list
from efsctl.errors import AwsError

OWNED, MISSING, FOREIGN = "owned", "missing", "foreign"


def _s3(aws: AwsContext) -> Any:
    return aws.client("s3")


@aws_call
def bucket_status(aws: AwsContext, name: str) -> str:
    """``owned`` (ours to use), ``missing``, or ``foreign`` (the name belongs to another account)."""
    try:
        _s3(aws).head_bucket(Bucket=name)
        return OWNED
    except Exception as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return MISSING
        if code not in ("403", "AccessDenied", "Forbidden", "301", "PermanentRedirect"):
            raise
    # 403 also means "ours, but this identity may not read it": ListBuckets tells the two apart.
    owned = any(b["Name"] == name for b in paginate(_s3(aws), "list_buckets", "Buckets"))
    return OWNED if owned else FOREIGN


@aws_call
def create_bucket(aws: AwsContext, name: str, region: str) -> bool:
    """Create the bucket; ``False`` if this account already had it."""
    params: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        _s3(aws).create_bucket(**params)
        return True
    except Exception as exc:
        if is_code(exc, "BucketAlreadyOwnedByYou"):
            return False
        if is_code(exc, "BucketAlreadyExists"):
            raise AwsError(f"The bucket name {name} is taken by another AWS account.",
                           "Pick another stack name with --stack.", code="BucketAlreadyExists",
                           operation="CreateBucket") from None
        raise


@aws_call
def public_access_block(aws: AwsContext, name: str) -> dict[str, bool] | None:
    try:
        return _s3(aws).get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    except Exception as exc:
        if is_code(exc, "NoSuchPublicAccessBlockConfiguration"):
            return None
        raise


@aws_call
def put_public_access_block(aws: AwsContext, name: str, config: Mapping[str, bool]) -> None:
    _s3(aws).put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(config))


@aws_call
def default_encryption(aws: AwsContext, name: str) -> str | None:
    """The default SSE algorithm (``AES256``, ``aws:kms``...) or ``None``."""
    try:
        rules = _s3(aws).get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    except Exception as exc:
        if is_code(exc, "ServerSideEncryptionConfigurationNotFoundError"):
            return None
        raise
    for rule in rules:
        algorithm = rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
        if algorithm:
            return algorithm
    return None


@aws_call
def put_default_encryption(aws: AwsContext, name: str, algorithm: str) -> None:
    _s3(aws).put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}]})


@aws_call
def bucket_policy(aws: AwsContext, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(_s3(aws).get_bucket_policy(Bucket=name)["Policy"])
    except Exception as exc:
        if is_code(exc, "NoSuchBucketPolicy"):
            return None
        raise


@aws_call
def put_bucket_policy(aws: AwsContext, name: str, document: Mapping[str, Any]) -> None:
    _s3(aws).put_bucket_policy(Bucket=name, Policy=json.dumps(document))


@aws_call
def bucket_tags(aws: AwsContext, name: str) -> dict[str, str]:
    try:
        return tag_dict(_s3(aws).get_bucket_tagging(Bucket=name)["TagSet"])
    except Exception as exc:
        if is_code(exc, "NoSuchTagSet", "NoSuchTagSetError"):
            return {}
        raise


@aws_call
def put_bucket_tags(aws: AwsContext, name: str, tags: Mapping[str, str]) -> None:
    """Replace the bucket's tag set (PutBucketTagging always replaces: pass the merged set)."""
    _s3(aws).put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)})


NOTIFICATION_KEYS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations",
                     "EventBridgeConfiguration")


@aws_call
def notification_configuration(aws: AwsContext, name: str) -> dict[str, Any]:
    response = _s3(aws).get_bucket_notification_configuration(Bucket=name)
    return {k: response[k] for k in NOTIFICATION_KEYS if k in response}


@aws_call
def put_notification_configuration(aws: AwsContext, name: str, config: Mapping[str, Any]) -> None:
    """Replace the bucket's whole notification configuration with ``config``."""
    _s3(aws).put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=dict(config))


# --- teardown (`efsctl down`) ----------------------------------------------------------------

@aws_call
def head_object(aws: AwsContext, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata (``ContentLength``, ``ETag``, ``Metadata``), or ``None`` if absent."""
    try:
        return _s3(aws).head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_code(exc, "404", "NoSuchKey", "NotFound"):
            return None
        raise


DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys per call


def _versions(aws: AwsContext, name: str, prefix: str = ""):
    """Every object version and delete marker (under ``prefix``), page by page:
    ``[(key, version_id, size)]``."""
    paginator = _s3(aws).get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=name, Prefix=prefix, PaginationConfig={"PageSize": DELETE_BATCH}):
        items = [(v["Key"], v.get("VersionId") or "null", int(v.get("Size") or 0)) for v in page.get("Versions", [])]
        items += [(m["Key"], m.get("VersionId") or "null", 0) for m in page.get("DeleteMarkers", [])]
        if items:
            yield items


@aws_call
def bucket_contents(aws: AwsContext, name: str) -> tuple[int, int]:
    """``(object versions and delete markers, total bytes)``; ``(0, 0)`` if the bucket is gone."""
    count = size = 0
    try:
        for page in _versions(aws, name):
            count += len(page)
            size += sum(item[2] for item in page)
    except Exception as exc:
        if is_code(exc, "NoSuchBucket"):
            return 0, 0
        raise
    return count, size


@aws_call
def empty_bucket(aws: AwsContext, name: str, on_batch: Any = None) -> tuple[int, int]:
    """Delete every object version and delete marker, 1000 per call. Returns ``(count, bytes)``;
    ``on_batch(count_so_far, bytes_so_far)`` after each batch."""
    count = size = 0
    try:
        abort_multipart_uploads(aws, name)
        for page in _versions(aws, name):
            for start in range(0, len(page), DELETE_BATCH):
                batch = page[start:start + DELETE_BATCH]
                _delete_batch(_s3(aws), name, batch, versions=True)
                count += len(batch)
                size += sum(item[2] for item in batch)
                if on_batch:
                    on_batch(count, size)
    except Exception as exc:
        if is_code(exc, "NoSuchBucket"):
            return count, size
        raise
    return count, size


@aws_call
def abort_multipart_uploads(aws: AwsContext, name: str) -> int:
    """Abort every unfinished multipart upload in the bucket (their parts are billed storage, and
    nothing lists them among the objects). Returns how many were aborted."""
    aborted = 0
    for upload in paginate(_s3(aws), "list_multipart_uploads", "Uploads", Bucket=name):
        if attempt(lambda u=upload: _s3(aws).abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"]),
                   "NoSuchUpload"):
            aborted += 1
    return aborted


@aws_call
def delete_objects(aws: AwsContext, name: str, *, prefix: str | None = None, keys: Any = ()) -> tuple[int, int]:
    """Delete the objects under ``prefix`` and the objects ``keys``, every version of them if the
    bucket was ever versioned, 1000 per call; nothing else is touched. Returns ``(deleted, bytes)``
    (bytes of what was listed: the objects under ``prefix``, every version of a versioned bucket)."""
    client = _s3(aws)
    versioned = bool(client.get_bucket_versioning(Bucket=name).get("Status"))
    items: list[tuple[str, str | None, int]] = []
    listed = [prefix] if prefix else []
    if versioned:  # an exact key has versions too: list each (S3 lists by prefix only)
        listed += [key for key in keys if not (prefix and key.startswith(prefix))]
    else:
        items += [(key, None, 0) for key in dict.fromkeys(keys) if not (prefix and key.startswith(prefix))]
    for start in listed:
        exact = start != prefix
        for page in _versions(aws, name, start):
            items += [f for f in page if f[0] == start or not exact]
    count = size = 0
    for first in range(0, len(items), DELETE_BATCH):
        batch = items[first:first + DELETE_BATCH]
        _delete_batch(client, name, batch, versions=versioned)
        count += len(batch)
        size += sum(item[2] for item in batch)
    return count, size


def _delete_batch(client: Any, name: str, batch: list[tuple[str, str | None, int]], *, versions: bool) -> None:
    """One DeleteObjects call for ``(key, version id, size)`` items (the versions named when
    ``versions``); raises on any error but an already-gone key or version."""
    objects = [{"Key": key, **({"VersionId": version} if versions and version else {})} for key, version, _ in batch]
    response = client.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    errors = [e for e in response.get("Errors", []) if e.get("Code") not in ("NoSuchVersion", "NoSuchKey")]
    if errors:
        raise AwsError(f"S3 refused to delete {len(errors)} object(s) from {name}, for example "
                       f"{errors[0].get('Key')!r}: {errors[0].get('Code')}: {errors[0].get('Message')}.",
                       code=errors[0].get("Code", ""), operation="DeleteObjects")


@aws_call
def remove_lambda_notifications(aws: AwsContext, name: str, *, function_arn: str, config_id: str) -> bool:
    """Drop the bucket's notification to ``function_arn`` (or with id ``config_id``), keeping any
    other; with nothing else configured this puts an empty configuration. ``False`` if the
    bucket is gone or had no such notification."""
    try:
        config = notification_configuration(aws, name)
    except AwsError as exc:
        if exc.code == "NoSuchBucket":
            return False
        raise
    ours = [c for c in config.get("LambdaFunctionConfigurations", [])
            if c.get("Id") == config_id or c.get("LambdaFunctionArn") == function_arn]
    if not ours:
        return False
    rest = [c for c in config.get("LambdaFunctionConfigurations", []) if c not in ours]
    remaining = {k: v for k, v in config.items() if k != "LambdaFunctionConfigurations"}
    if rest:
        remaining["LambdaFunctionConfigurations"] = rest
    try:
        _s3(aws).put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=remaining)
    except Exception as exc:
        if is_code(exc, "NoSuchBucket"):
            return False
        raise
    return True


@aws_call
def delete_bucket_policy(aws: AwsContext, name: str) -> None:
    try:
        _s3(aws).delete_bucket_policy(Bucket=name)
    except Exception as exc:
        if not is_code(exc, "NoSuchBucket", "NoSuchBucketPolicy"):
            raise


@aws_call
def delete_bucket(aws: AwsContext, name: str) -> bool:
    """Delete the (empty) bucket; ``BucketNotEmpty`` propagates."""
    return attempt(lambda: _s3(aws).delete_bucket(Bucket=name), "NoSuchBucket")
