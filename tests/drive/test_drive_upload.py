"""upload: key, metadata, multipart, waiting for EFS, rejections, and name checks first."""

import hashlib
import json

import pytest

from efsctl.console import Console
from efsctl.drive.upload import refusal_is_ours, upload_model, wait_on_efs
from efsctl.drive.api import ApiClient, model_path
from efsctl.waits import FakeClock

REGION = "us-east-1"
BUCKET = "efsctl-default-123456789012-us-east-1"


def s3():
    import boto3

    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "resnet.safetensors"
    path.write_bytes(b"\x00weights" * 1000)
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def target(drive_stack):
    from efsctl.drive.target import DriveTarget

    return DriveTarget(stack="default", region=REGION, is_local=False, api_url=None, bucket=BUCKET)


def aws_ctx():
    from efsctl.aws.session import AwsContext

    return AwsContext(region=REGION)


def test_upload_puts_key_and_sha256_metadata(drive_stack, model_file):
    result = upload_model(aws_ctx(), target(drive_stack), model_file, "team/resnet.safetensors", console=Console())
    head = s3().head_object(Bucket=BUCKET, Key="models/team/resnet.safetensors")
    assert head["Metadata"] == {"sha256": sha(model_file)}
    assert head["ContentLength"] == model_file.stat().st_size == result.size
    assert result.key == "models/team/resnet.safetensors" and result.sha256 == sha(model_file)
    assert "-" not in head["ETag"]  # one PUT below the multipart threshold


def test_large_upload_is_multipart_with_metadata(drive_stack, tmp_path):
    from efsctl.aws.transfer import MiB, TransferSettings

    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (11 * MiB // 256))
    seen = []

    class Recording(Console):
        def transfer(self, total, description):
            import contextlib

            @contextlib.contextmanager
            def bar():
                seen.append((description, total, []))
                yield seen[-1][2].append
            return bar()

    upload_model(aws_ctx(), target(drive_stack), path, "big.bin", console=Recording(),
                 settings=TransferSettings(threshold=5 * MiB, chunk=5 * MiB, concurrency=3))
    head = s3().head_object(Bucket=BUCKET, Key="models/big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["Metadata"]["sha256"] == sha(path)
    assert [(d, t) for d, t, _ in seen] == [("sha256", 11 * MiB), ("upload", 11 * MiB)]
    assert sum(seen[1][2]) == 11 * MiB  # the byte bar saw every byte go out


def test_cli_upload_no_wait_json(cli, drive_stack, model_file, api_server):
    result = cli("upload", str(model_file), "--no-wait", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    etag = s3().head_object(Bucket=BUCKET, Key="models/resnet.safetensors")["ETag"].strip('"')
    assert doc == {"name": "resnet.safetensors", "key": "models/resnet.safetensors", "bucket": BUCKET,
                   "size": model_file.stat().st_size, "sha256": sha(model_file),
                   "uploaded_s": doc["uploaded_s"], "etag": etag, "parts_sent": 1, "parts_resumed": 0, "wait": None}
    assert api_server.requests == []


class Interrupt:
    """A call hook: Ctrl-C arrives as the ``after``-th UploadPart is about to go out."""

    def __init__(self, after: int) -> None:
        self.after, self.parts, self.calls = after, 0, []

    def __call__(self, service, operation, params) -> None:
        self.calls.append(operation)
        if operation == "UploadPart":
            self.parts += 1
            if self.parts == self.after:
                raise KeyboardInterrupt


def test_an_interrupted_upload_run_again_sends_only_the_missing_parts(drive_stack, tmp_path):
    from efsctl.aws.session import AwsContext
    from efsctl.aws.transfer import MiB, TransferSettings

    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (23 * MiB // 256))   # 5 parts of 5 MiB, the last 3 MiB
    settings = TransferSettings(threshold=5 * MiB, chunk=5 * MiB, concurrency=1)
    uploads = tmp_path / "uploads"
    first = AwsContext(region=REGION)
    cut = Interrupt(after=3)
    first.add_call_hook(cut)
    with pytest.raises(KeyboardInterrupt):
        upload_model(first, target(drive_stack), path, "big.bin", console=Console(), settings=settings,
                     resume_dir=uploads)
    assert cut.calls.count("UploadPart") == 3 and "CompleteMultipartUpload" not in cut.calls
    [open_upload] = s3().list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert len(s3().list_parts(Bucket=BUCKET, Key="models/big.bin", UploadId=open_upload["UploadId"])["Parts"]) == 2

    again = AwsContext(region=REGION)
    calls = []
    again.add_call_hook(lambda service, operation, params: calls.append(operation))
    result = upload_model(again, target(drive_stack), path, "big.bin", console=Console(), settings=settings,
                          resume_dir=uploads)
    assert calls.count("UploadPart") == 3 and "CreateMultipartUpload" not in calls   # parts 3, 4 and 5 only
    assert (result.parts_sent, result.parts_resumed) == (3, 2)
    body = s3().get_object(Bucket=BUCKET, Key="models/big.bin")
    assert hashlib.sha256(body["Body"].read()).hexdigest() == sha(path) == body["Metadata"]["sha256"]
    assert s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == [] and not any(uploads.iterdir())


def test_a_file_changed_since_the_interruption_is_uploaded_afresh(drive_stack, tmp_path):
    import os

    from efsctl.aws.session import AwsContext
    from efsctl.aws.transfer import MiB, TransferSettings

    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * (12 * MiB))
    settings = TransferSettings(threshold=5 * MiB, chunk=5 * MiB, concurrency=1)
    uploads = tmp_path / "uploads"
    first = AwsContext(region=REGION)
    first.add_call_hook(Interrupt(after=2))
    with pytest.raises(KeyboardInterrupt):
        upload_model(first, target(drive_stack), path, "big.bin", console=Console(), settings=settings,
                     resume_dir=uploads)
    path.write_bytes(b"b" * (12 * MiB))
    os.utime(path, ns=(1, 1))   # a different mtime whatever the clock's resolution
    again = AwsContext(region=REGION)
    calls = []
    again.add_call_hook(lambda service, operation, params: calls.append(operation))
    result = upload_model(again, target(drive_stack), path, "big.bin", console=Console(), settings=settings,
                          resume_dir=uploads)
    assert "AbortMultipartUpload" in calls and calls.count("UploadPart") == 3 and result.parts_resumed == 0
    assert result.sha256 == sha(path)   # hashed again: the file changed
    body = s3().get_object(Bucket=BUCKET, Key="models/big.bin")["Body"].read()
    assert body == b"b" * (12 * MiB)


@pytest.mark.parametrize("name", ["my model.bin", "modèles/数据 v2.gguf"])
def test_cli_upload_names_with_spaces_and_unicode(cli, drive_stack, model_file, name, no_sleep, api_server):
    api_server.route("GET", model_path(name), (404, {"error": {"code": "NotFound", "message": "not found"}}),
                     (200, {"name": name, "sha256": sha(model_file), "size": 8000}))
    result = cli("upload", str(model_file), "--name", name, "--wait", "--json")
    assert result.exit_code == 0, result
    doc = result.json()
    assert doc["name"] == name and doc["sha256"] == sha(model_file)
    assert doc["wait"]["on_efs"] is True and doc["wait"]["latency_s"] >= 0
    assert s3().head_object(Bucket=BUCKET, Key=f"models/{name}")["Metadata"]["sha256"] == sha(model_file)


def test_cli_upload_wait_waits_for_the_new_checksum(cli, drive_stack, model_file, no_sleep, api_server):
    old = {"name": "resnet.safetensors", "sha256": "0" * 64}
    new = {"name": "resnet.safetensors", "sha256": sha(model_file)}
    api_server.route("GET", "/models/resnet.safetensors", (200, old), (200, old), (200, new))
    result = cli("upload", str(model_file), "--wait")
    assert result.exit_code == 0, result
    assert len(api_server.requests) == 3
    assert "on EFS" in result.stdout and "sha256 matches" in result.stdout
    assert no_sleep.sleeps and all(s <= 2.0 for s in no_sleep.sleeps)


def refusal(reason, etag, detail="why", **extra):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (409, {"error": {"code": "UploadRejected", "message": f"the producer refused the latest upload of "
                            f"'resnet.safetensors': {detail}", "reason": reason, "detail": detail, "etag": etag,
                            "refused_at": now, **extra}})


def uploaded_etag(name="resnet.safetensors"):
    return s3().head_object(Bucket=BUCKET, Key=f"models/{name}")["ETag"].strip('"')


def test_cli_upload_wait_reports_a_checksum_refusal(cli, drive_stack, model_file, no_sleep, api_server):
    wrong = "f" * 64
    not_yet = (404, {"error": {"code": "NotFound", "message": "x"}})
    api_server.route("GET", "/models/resnet.safetensors", not_yet,
                     lambda request: refusal("checksum_mismatch", uploaded_etag(), f"x-amz-meta-sha256 was {wrong} "
                                             f"but the object's sha256 is {sha(model_file)}", expected_sha256=wrong))
    result = cli("upload", str(model_file), "--wait", "--json", "--declared-sha256", wrong)
    assert result.exit_code == 1, result
    doc = result.json()
    assert doc["wait"]["on_efs"] is False and doc["wait"]["rejected"] is True
    assert doc["wait"]["reason"] == "checksum_mismatch" and doc["etag"] == uploaded_etag()
    assert "The producer refused 'resnet.safetensors': x-amz-meta-sha256 was" in doc["wait"]["error"]
    assert "producer refused" in result.stderr and "did not match the one declared" in result.stderr
    assert len(api_server.requests) == 2  # the poll right after the refusal ends the wait
    assert s3().head_object(Bucket=BUCKET, Key="models/resnet.safetensors")["Metadata"]["sha256"] == wrong


def test_cli_upload_wait_reports_a_name_conflict_within_a_poll(cli, drive_stack, model_file, no_sleep, api_server):
    api_server.route("GET", "/models/clash/inner", (404, {"error": {"code": "NotFound", "message": "x"}}),
                     lambda request: refusal("name_conflict", uploaded_etag("clash/inner"),
                                             "the name clashes with models on EFS: 'clash' is a file"))
    result = cli("upload", str(model_file), "--name", "clash/inner", "--wait")
    assert result.exit_code == 1, result
    assert "The producer refused 'clash/inner': the name clashes with models on EFS" in result.stderr
    assert "pick another --name" in result.stderr and "Gave up" not in result.stderr
    assert sum(no_sleep.sleeps) < 1.0  # seconds of (fake) waiting, not the 300 s timeout


def test_someone_elses_refusal_does_not_end_our_wait(api_server):
    api_server.route("GET", "/models/m", refusal("too_large", "older-etag"), (200, {"name": "m", "sha256": "a" * 64}))
    result = wait_on_efs(ApiClient(api_server.url, None), "m", "a" * 64, etag="ours", clock=FakeClock())
    assert result.on_efs


def test_a_refusal_is_matched_by_etag_then_by_declared_checksum():
    assert refusal_is_ours({"etag": "abc"}, "abc", "d" * 64)
    assert not refusal_is_ours({"etag": "abc", "expected_sha256": "d" * 64}, "xyz", "d" * 64)
    assert refusal_is_ours({"etag": '"abc"'}, "abc", "d" * 64)
    assert refusal_is_ours({"expected_sha256": "D" * 64}, None, "d" * 64)  # the upload's HEAD failed
    assert not refusal_is_ours({"reason": "name_conflict"}, None, "d" * 64)
    # the same bytes again (same ETag): a refusal from before this upload was stored is not ours
    stored = 1738324805.0  # 2025-01-31T12:00:05Z
    old, new = {"etag": "abc", "refused_at": "2025-01-31T12:00:01.000Z"}, {"etag": "abc", "refused_at": "2025-01-31T12:00:05.300Z"}
    assert not refusal_is_ours(old, "abc", "d" * 64, stored) and refusal_is_ours(new, "abc", "d" * 64, stored)


def test_wait_times_out_with_a_fake_clock(api_server):
    api_server.route("GET", "/models/m", (404, {"error": {"code": "NotFound", "message": "not found"}}))
    clock = FakeClock()
    result = wait_on_efs(ApiClient(api_server.url, None), "m", "a" * 64, timeout=30, clock=clock)
    assert result.on_efs is False and result.timed_out and "Gave up waiting for 'm' to reach EFS after 30 s" in result.error
    assert 30 <= clock.t < 33 and max(clock.sleeps) <= 2.0


def test_wait_measures_latency_on_the_clock(api_server):
    api_server.route("GET", "/models/m", (404, {"error": {"code": "NotFound", "message": "not found"}}),
                     (404, {"error": {"code": "NotFound", "message": "not found"}}),
                     (200, {"sha256": "a" * 64}))
    clock = FakeClock()
    result = wait_on_efs(ApiClient(api_server.url, None), "m", "a" * 64, clock=clock)
    assert result.on_efs and result.latency_s == pytest.approx(sum(clock.sleeps))


@pytest.mark.parametrize("args", [
    ["--name", "../escape.bin"], ["--name", "/etc/passwd"], ["--name", "a\\b"], ["--name", "a/./b"],
    ["--name", ".hidden"], ["--name", "x" * 1025], ["--name", "a/"], ["--name", "nul\x00"],
])
def test_cli_hostile_names_fail_before_any_call(cli, drive_stack, model_file, api_server, s3_objects, args):
    calls = []
    from efsctl.aws.session import AwsContext

    original = AwsContext.client
    AwsContext.client = lambda self, service: calls.append(service) or original(self, service)
    try:
        result = cli("upload", str(model_file), *args, "--wait")
    finally:
        AwsContext.client = original
    assert result.exit_code == 2, result
    assert "Invalid model name" in result.stderr and "Traceback" not in result.output
    assert calls == [] and s3_objects() == [] and api_server.requests == []


def test_cli_default_name_must_be_valid(cli, drive_stack, tmp_path):
    path = tmp_path / ".secret"
    path.write_bytes(b"x")
    result = cli("upload", str(path), "--no-wait")
    assert result.exit_code == 2 and "Pick a valid name with --name" in result.stderr


def test_cli_missing_file_is_a_usage_error(cli, drive_stack, tmp_path):
    result = cli("upload", str(tmp_path / "nope.bin"))
    assert result.exit_code == 2 and "There is no file" in result.stderr


def test_cli_upload_without_a_stack(cli, model_file):
    result = cli("upload", str(model_file), "--no-wait")
    assert result.exit_code == 1 and "There is no stack 'default' here" in result.stderr


def test_cli_upload_to_a_missing_bucket(cli, drive_stack, model_file):
    s3().delete_bucket(Bucket=BUCKET)
    result = cli("upload", str(model_file), "--no-wait", "--json")
    assert result.exit_code == 1
    assert "does not exist" in json.loads(result.stdout)["error"]["message"]


def test_bucket_is_derived_when_not_recorded(cli, drive_stack, model_file, efsctl_home):
    from efsctl.state import StateStore

    store = StateStore(efsctl_home)
    state = store.load("default")
    state.outputs.pop("bucket")
    state.account = None
    store.save(state)
    s3().create_bucket(Bucket="efsctl-default-123456789012-us-east-1")
    result = cli("upload", str(model_file), "--no-wait", "--json")
    assert result.exit_code == 0, result
    assert result.json()["bucket"] == "efsctl-default-123456789012-us-east-1"


def test_cli_upload_wait_when_the_api_refuses(cli, drive_stack, model_file, no_sleep, api_server):
    api_server.route("GET", "/models/resnet.safetensors", (403, {"message": "Forbidden"}))
    result = cli("upload", str(model_file), "--wait", "--json")
    assert result.exit_code == 1
    doc = result.json()
    assert doc["sha256"] == sha(model_file) and doc["wait"]["on_efs"] is False
    assert "403 Forbidden" in doc["wait"]["error"] and "403 Forbidden" in result.stderr


def test_rejected_reupload_while_the_old_version_stays(api_server, model_file):
    wrong = "e" * 64
    old = {"name": "m", "sha256": "0" * 64, "size": 3}
    rejected = dict(old, rejected={"reason": "checksum_mismatch", "detail": "mismatch", "etag": "ours",
                                   "expected_sha256": wrong, "actual_sha256": sha(model_file), "refused_at": "t"})
    api_server.route("GET", "/models/m", (200, old), (200, rejected))
    result = wait_on_efs(ApiClient(api_server.url, None), "m", sha(model_file), declared_sha256=wrong,
                         etag="ours", clock=FakeClock())
    assert result.rejected and "previous version stays on EFS" in result.error
    assert result.reason == "checksum_mismatch"
    # someone else's refused upload does not end our wait
    api_server.route("GET", "/models/m", (200, rejected), (200, {"name": "m", "sha256": sha(model_file)}))
    assert wait_on_efs(ApiClient(api_server.url, None), "m", sha(model_file), etag="mine", clock=FakeClock()).on_efs
