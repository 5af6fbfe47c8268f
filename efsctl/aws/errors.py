"""Turn botocore exceptions into efsctl errors an operator can act on."""

from __future__ import annotations

from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError,
                                 NoCredentialsError, NoRegionError, ProfileNotFound)

from efsctl.aws.session import NO_CREDENTIALS, NO_REGION
from efsctl.errors import AwsError, ConfigError, CredentialsError, EfsctlError

EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
          "AuthorizationError", "Forbidden"}
BAD_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure",
                   "SignatureDoesNotMatch", "InvalidAccessKeyId", "IncompleteSignature"}
QUOTAS = {"VpcLimitExceeded": "VPCs per region", "AddressLimitExceeded": "Elastic IP addresses",
          "NetworkInterfaceLimitExceeded": "network interfaces", "RulesPerSecurityGroupLimitExceeded":
          "rules per security group", "FileSystemLimitExceeded": "EFS file systems",
          "AccessPointLimitExceeded": "EFS access points", "TooManyBuckets": "S3 buckets",
          "LimitExceeded": "IAM entities", "CodeStorageExceededException": "Lambda code storage"}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "") or ""
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Message", "") or ""
    return str(exc)


def translate(exc: BaseException) -> EfsctlError | None:
    """The efsctl error for a botocore exception, or ``None`` if it is not one."""
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
            return AwsError(f"AWS denied {operation}: {message}.",
                            f"Grant your identity permission for {operation} and run the command again.",
                            code=code, operation=operation)
        if code in QUOTAS:
            return AwsError(f"An AWS quota stops {operation}: the account is at its limit of {QUOTAS[code]} "
                            f"({message}).", "Free some up or request a quota increase, then run again.",
                            code=code, operation=operation)
        return AwsError(f"AWS {operation} failed: {code}: {message}.", code=code, operation=operation)
    if isinstance(exc, BotoCoreError):
        return AwsError(f"AWS call failed: {exc}.")
    return None
