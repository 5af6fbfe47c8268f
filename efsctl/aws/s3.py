"""The stack's S3 bucket: creation, public access block, encryption, policy, tags, notification."""

from __future__ import annotations

import json
from typing import Any, Mapping

from efsctl.aws.errors import aws_call, error_code, is_code
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
