"""S3 uploads for ``efsctl upload``: boto3's transfer manager, multipart with concurrency.

Small files go up in one PUT; large ones in parts sent in parallel. The uploader's SHA-256
travels as ``x-amz-meta-sha256`` so the producer can verify what it copies to EFS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from boto3.s3.transfer import TransferConfig

MiB = 1024 * 1024


@dataclass(frozen=True)
class TransferSettings:
    """Multipart above ``threshold``, ``chunk``-sized parts, ``concurrency`` in flight."""

    threshold: int = 64 * MiB
    chunk: int = 16 * MiB
    concurrency: int = 8

    def boto(self) -> TransferConfig:
        return TransferConfig(multipart_threshold=self.threshold, multipart_chunksize=self.chunk,
                              max_concurrency=self.concurrency, use_threads=self.concurrency > 1)


def upload_file(aws: Any, path: str | Path, bucket: str, key: str, *, sha256: str | None,
                progress: Callable[[int], None] | None = None,
                settings: TransferSettings = TransferSettings()) -> None:
    """Upload ``path`` to ``s3://bucket/key`` with ``sha256`` (lower-case hex) as metadata.

    ``progress(nbytes)`` is called from the transfer threads as bytes go out.
    """
    extra: dict[str, Any] = {"ContentType": "application/octet-stream"}
    if sha256 is not None:
        extra["Metadata"] = {"sha256": sha256}
    from boto3.exceptions import S3UploadFailedError

    try:
        aws.client("s3").upload_file(str(path), bucket, key, ExtraArgs=extra, Callback=progress,
                                     Config=settings.boto())
    except S3UploadFailedError as exc:
        raise _upload_error(exc, bucket, key) from None


def _upload_error(exc: Exception, bucket: str, key: str) -> Exception:
    from efsctl.aws.errors import error_code, translate
    from efsctl.errors import AwsError

    cause = exc.__context__
    if cause is not None and error_code(cause) == "NoSuchBucket":
        return AwsError(f"The stack's bucket {bucket} does not exist.",
                        "Run `efsctl up` (or `efsctl up --local`) to create it, then upload again.",
                        code="NoSuchBucket", operation="PutObject")
    translated = translate(cause) if cause is not None else None
    return translated or AwsError(f"Upload to s3://{bucket}/{key} failed: {exc}.")


def head_object(aws: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata (``ContentLength``, ``ETag``, ``Metadata``), or ``None`` if absent."""
    from botocore.exceptions import ClientError

    try:
        return aws.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
