"""The producer's removal of validation data (lambda_code/efs_scratch.py), on a directory that
stands for the file system: a run's models, records and results go; nothing else does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

LAMBDA_CODE = Path(__file__).resolve().parents[2] / "lambda_code"
if str(LAMBDA_CODE) not in sys.path:
    sys.path.insert(0, str(LAMBDA_CODE))

import efs_records as rec  # noqa: E402
import efs_store as store  # noqa: E402
import producer  # noqa: E402

RUN = "20260101-000000-abc123"
FOLDER = f"efsctl-validate/{RUN}/"


@pytest.fixture
def efs(tmp_path, monkeypatch):
    monkeypatch.setenv("EFS_MOUNT_PATH", str(tmp_path))
    producer._prepared.clear()
    layout = store.Layout(str(tmp_path))
    layout.ensure()
    return layout


def install(layout, name: str, data: bytes) -> None:
    path = Path(layout.model_path(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    rec.write_record(layout, rec.ModelRecord(name=name, key=f"models/{name}", size=len(data), sha256="0" * 64,
                                             etag="e", sequencer=None, mtime_ns=st.st_mtime_ns,
                                             installed_at="2026-01-01T00:00:00.000Z", ino=st.st_ino))
    with store.name_lock(layout, name):
        pass


def output(layout, filename: str, model: str) -> Path:
    path = Path(layout.outputs) / filename
    path.write_text(json.dumps({"model": model, "sha256": "0" * 64}))
    return path


def remove(**event):
    return producer.handler({"efsctl": "remove-validation-data", **event}, None)


def test_a_runs_models_records_and_results_go_and_nothing_else(efs):
    install(efs, FOLDER + "models/00-4KiB.bin", b"a" * 10)
    install(efs, FOLDER + "atomic/model.bin", b"b" * 20)
    install(efs, "user/model.bin", b"user")
    install(efs, "efsctl-validate/another-run/x.bin", b"other run")
    refused = FOLDER + "refused.bin"   # a refused upload leaves a record, not a file
    rec.write_refusal(efs, rec.Refusal(name=refused, key=f"models/{refused}", etag="e", sequencer=None,
                                       reason=rec.CHECKSUM_MISMATCH, message="x", refused_at="2026"))
    ours = output(efs, "r1.json", FOLDER + "models/00-4KiB.bin")
    theirs = output(efs, "r2.json", "user/model.bin")

    answer = remove(run=RUN, names=[refused], outputs=["r1.json", "r2.json", "gone.json"])

    assert answer["removed"] == {"models": 2, "bytes": 30, "records": 3, "outputs": 1, "folders": 3}
    assert answer["kept"] == [{"output": "r2.json", "why": "not the result of a prediction on this run's models"}]
    assert not (Path(efs.models) / FOLDER).exists() and not ours.exists() and theirs.exists()
    assert (Path(efs.models) / "user/model.bin").read_bytes() == b"user"
    assert (Path(efs.models) / "efsctl-validate/another-run/x.bin").exists()
    assert rec.read_record(efs, "user/model.bin") is not None and rec.read_refusal(efs, refused) is None
    assert not Path(efs.lock_path(FOLDER + "atomic/model.bin")).exists()


def test_the_reserved_folder_itself_goes_once_empty(efs):
    install(efs, FOLDER + "m.bin", b"x")
    assert remove(run=RUN)["removed"]["models"] == 1
    assert not (Path(efs.models) / "efsctl-validate").exists()


@pytest.mark.parametrize("event", [
    {"run": "../etc"}, {"run": ""}, {"run": RUN, "names": ["user/model.bin"]},
    {"run": RUN, "names": [FOLDER + "../../user/model.bin"]}, {"run": RUN, "names": "not a list"},
    {"run": RUN, "outputs": [1, 2]},
])
def test_a_request_that_names_anything_else_removes_nothing(efs, event):
    install(efs, "user/model.bin", b"user")
    install(efs, FOLDER + "m.bin", b"x")
    answer = remove(**event)
    assert answer["error"]["code"] in ("BadRequest", "InvalidModelName")
    assert (Path(efs.models) / "user/model.bin").exists() and (Path(efs.models) / FOLDER / "m.bin").exists()


def test_an_output_that_is_not_a_plain_result_file_is_kept(efs):
    outside = Path(efs.root) / "secret.json"
    outside.write_text(json.dumps({"model": FOLDER + "m.bin"}))
    answer = remove(run=RUN, outputs=["../secret.json", "notjson.txt"])
    assert answer["removed"]["outputs"] == 0 and outside.exists()
    assert {k["why"] for k in answer["kept"]} == {"not a result's file name"}


def test_s3_events_still_go_to_the_copy(efs):
    assert producer.handler({"Records": []}, None) == {"results": []}
