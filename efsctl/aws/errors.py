"""Turn botocore exceptions into efsctl errors an operator can act on."""

from __future__ import annotations

import functools
from typing import Any, Callable, ParamSpec, TypeVar

from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError,
                                 NoCredentialsError, NoRegionError, ProfileNotFound)

from efsctl.aws.session import NO_CREDENTIALS, NO_REGION
from efsctl.errors import AwsError, ConfigError, CredentialsError, EfsctlError

P = ParamSpec("P")
R = TypeVar("R")

EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
          "AuthorizationError", "Forbidden"}
BAD_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure",
                   "SignatureDoesNotMatch", "InvalidAccessKeyId", "IncompleteSignature"}
QUOTAS = {"VpcLimitExceeded": "VPCs per region", "AddressLimitExceeded": "Elastic IP addresses",
          "NetworkInterfaceLimitExceeded": "network interfaces", "RulesPerSecurityGroupLimitExceeded":
          "rules per security group", "FileSystemLimitExceeded": "EFS file systems",
          "AccessPointLimitExceeded": "EFS access points", "TooManyBuckets": "S3 buckets",
          "LimitExceeded": "IAM entities", "CodeStorageExceededException": "Lambda code storage",
          "SubnetLimitExceeded": "subnets per VPC", "SecurityGroupLimitExceeded": "security groups",
          "RouteTableLimitExceeded": "route tables", "VpcEndpointLimitExceeded": "VPC endpoints",
          "MountTargetLimitExceeded": "mount targets", "TooManyApisException": "HTTP APIs"}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "") or ""
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Message", "") or ""
    return str(exc)


# IAM action prefixes by AWS-layer module, and S3 operations whose IAM action has another name,
# so an access-denied error can name the permission the operator must grant.
IAM_PREFIX = {"ec2": "ec2", "efs": "elasticfilesystem", "iam": "iam", "lambda_": "lambda", "s3": "s3",
              "apigw": "apigateway", "logs": "logs", "sts": "sts", "session": "sts"}
S3_ACTIONS = {"PutBucketEncryption": "PutEncryptionConfiguration",
              "GetBucketEncryption": "GetEncryptionConfiguration",
              "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
              "GetPublicAccessBlock": "GetBucketPublicAccessBlock", "HeadBucket": "ListBucket",
              "PutBucketNotificationConfiguration": "PutBucketNotification",
              "GetBucketNotificationConfiguration": "GetBucketNotification"}


def iam_action(prefix: str | None, operation: str) -> str:
    if not prefix:
        return operation
    if prefix == "s3":
        operation = S3_ACTIONS.get(operation, operation)
    return f"{prefix}:{operation}"


def translate(exc: BaseException, *, service: str | None = None) -> EfsctlError | None:
    """The efsctl error for a botocore exception, or ``None`` if it is not one.

    ``service`` is the IAM action prefix (``ec2``, ``elasticfilesystem``...) when known.
    """
    if isinstance(exc, NoCredentialsError):
        return CredentialsError(NO_CREDENTIALS)
    if isinstance(exc, NoRegionError):
        return ConfigError(NO_REGION)
    if isinstance(exc, ProfileNotFound):
        return ConfigError(f"{exc}.", "Check AWS_PROFILE / --profile and ~/.aws/config.")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(f"Cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}.",
                        "Check the network, --endpoint-url, or `efsctl status` for a local stack.")
    if isinstance(exc, ClientError):
        code, message = error_code(exc), error_message(exc).rstrip(".")
        operation = exc.operation_name
        if code in EXPIRED:
            return CredentialsError("Your AWS credentials have expired.",
                                    "Refresh them (for example `aws sso login`) and run the command again.")
        if code in BAD_CREDENTIALS:
            return CredentialsError(f"AWS rejected your credentials ({code}).",
                                    "Check AWS_PROFILE / AWS_ACCESS_KEY_ID, or use `efsctl up --local`.")
        if code in DENIED:
            action = iam_action(service, operation)
            # EC2 appends a long encoded blob that helps nobody reading a terminal.
            message = message.split(". Encoded authorization failure message")[0].rstrip(".")
            return AwsError(f"AWS denied {action}: {message}.",
                            f"Grant your identity permission for {action} and run the command again.",
                            code=code, operation=operation)
        if code in QUOTAS:
            return AwsError(f"An AWS quota stops {operation}: the account is at its limit of {QUOTAS[code]} "
                            f"({message}).", "Free some up or request a quota increase, then run again.",
                            code=code, operation=operation)
        return AwsError(f"AWS {operation} failed: {code}: {message}.", code=code, operation=operation)
    if isinstance(exc, BotoCoreError):
        return AwsError(f"AWS call failed: {exc}.")
    return None


def aws_call(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate an AWS-layer helper so callers only ever see efsctl errors."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            service = IAM_PREFIX.get(fn.__module__.rsplit(".", 1)[-1])
            raise (translate(exc, service=service) or AwsError(str(exc))) from exc

    return wrapper


def is_code(exc: BaseException, *codes: str) -> bool:
    return error_code(exc) in codes


def attempt(call: Callable[[], Any], *codes: str) -> bool:
    """Run ``call``: True if it ran, False if AWS answered with one of ``codes`` (a delete of
    something already gone, a create of something that exists); any other error propagates."""
    try:
        call()
        return True
    except Exception as exc:
        if is_code(exc, *codes):
            return False
        raise
