"""Several processes replace one model while others hash it: every reader must see exactly
one complete version each time, and the newest version must win."""

from __future__ import annotations

import hashlib
import multiprocessing
import os


import efs_records as rec
import efs_store as store
import lambda_mp_workers as workers

SIZE = 3 << 20
CTX = multiprocessing.get_context("spawn")  # no fork of a process that runs server threads


def _collect(results, expected_messages: int, processes) -> list:
    messages = []
    while len(messages) < expected_messages:
        message = results.get(timeout=120)
        assert message[0] != "error", message[2]
        messages.append(message)
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    return messages


def _run(writer_target, writer_args, mount: str, writers: int, readers: int, rounds: int):
    barrier = CTX.Barrier(writers + readers)
    stop = CTX.Event()
    results = CTX.Queue()
    write_procs = [CTX.Process(target=writer_target, args=(*writer_args(w), barrier, results))
                   for w in range(writers)]
    read_procs = [CTX.Process(target=workers.reader, args=(mount, barrier, stop, results))
                  for _ in range(readers)]
    for process in write_procs + read_procs:
        process.start()
    writer_messages = _collect(results, writers * rounds, write_procs)
    stop.set()
    reader_messages = _collect(results, readers, read_procs)
    return writer_messages, reader_messages


def _install_first(mount: str, s3, index: int) -> None:
    """Version `index` in place before the race starts, so readers always find a model."""
    import producer

    layout = store.Layout(mount)
    ev = producer.ObjectEvent(bucket=workers.BUCKET, key=workers.KEY, name=workers.NAME,
                              etag=s3.etag(index), sequencer=workers.sequencer(index), size=None)
    assert producer.ingest(s3, layout, ev) == "installed"


def test_writers_replace_while_readers_hash_real_s3(tmp_path, moto_server, monkeypatch):
    """Through moto's HTTP server: uploads race with producers; no sequencers (moto has none)."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=workers.BUCKET)
    mount = str(tmp_path / "efs")
    writers, rounds, readers = 3, 4, 2
    first = 999
    data = workers.version_bytes(first, SIZE)
    etag = s3.put_object(Bucket=workers.BUCKET, Key=workers.KEY, Body=data)["ETag"].strip('"')
    import producer

    assert producer.ingest(s3, store.Layout(mount), producer.ObjectEvent(
        workers.BUCKET, workers.KEY, workers.NAME, etag, None, None)) == "installed"

    plan = {w: [1 + w * rounds + r for r in range(rounds)] for w in range(writers)}
    upload_lock = CTX.Lock()
    writer_messages, reader_messages = _run(
        workers.s3_writer, lambda w: (moto_server, mount, plan[w], SIZE, upload_lock), mount, writers, readers, rounds)

    allowed = {workers.version_sha(i, SIZE) for i in [first] + sum(plan.values(), [])}
    for _, seen in reader_messages:
        assert seen and set(seen) <= allowed  # never a torn or mixed file
    outcomes = [m[2] for m in writer_messages]
    assert "installed" in outcomes and set(outcomes) <= {"installed", "superseded"}
    # the newest upload wins: EFS holds exactly what S3 holds now
    current = s3.get_object(Bucket=workers.BUCKET, Key=workers.KEY)["Body"].read()
    model = os.path.join(mount, "models", workers.NAME)
    assert open(model, "rb").read() == current
    assert all(seen[-1] == hashlib.sha256(current).hexdigest() for _, seen in reader_messages)
    record = rec.read_record(store.Layout(mount), workers.NAME)
    assert rec.record_matches(record, os.stat(model)) and record.etag == s3.head_object(
        Bucket=workers.BUCKET, Key=workers.KEY)["ETag"].strip('"')
    assert os.listdir(os.path.join(mount, ".efsctl", "tmp")) == []


def test_out_of_order_events_race_and_the_highest_sequencer_wins(tmp_path):
    """Every version stays fetchable, events arrive shuffled across processes: only the
    sequencer comparison under the per-name lock keeps an older copy from landing last."""
    mount = str(tmp_path / "efs")
    _install_first(mount, workers.AllVersionsS3(SIZE), 0)
    writers, rounds, readers = 3, 5, 2
    indices = list(range(1, writers * rounds + 1))
    shuffled = indices[::-1][::2] + indices[::-1][1::2]  # newest first, interleaved
    plan = {w: shuffled[w::writers] for w in range(writers)}
    writer_messages, reader_messages = _run(
        workers.sequenced_writer, lambda w: (mount, plan[w], SIZE), mount, writers, readers, rounds)

    allowed = {workers.version_sha(i, SIZE) for i in [0] + indices}
    for _, seen in reader_messages:
        assert seen and set(seen) <= allowed
    outcomes = {m[1]: m[2] for m in writer_messages}
    assert set(outcomes.values()) <= {"installed", "stale"}
    newest = max(indices)
    model = os.path.join(mount, "models", workers.NAME)
    assert open(model, "rb").read() == workers.version_bytes(newest, SIZE)
    assert all(seen[-1] == workers.version_sha(newest, SIZE) for _, seen in reader_messages)
    record = rec.read_record(store.Layout(mount), workers.NAME)
    assert record.sequencer == workers.sequencer(newest) and rec.record_matches(record, os.stat(model))
    assert os.listdir(os.path.join(mount, ".efsctl", "tmp")) == []


def test_threads_in_one_process_are_serialised_too(tmp_path):
    """POSIX record locks are per process; the thread lock covers a multi-threaded caller."""
    from concurrent.futures import ThreadPoolExecutor

    import producer

    mount = str(tmp_path / "efs")
    layout = store.Layout(mount)
    s3 = workers.AllVersionsS3(64 << 10)
    events = [producer.ObjectEvent(workers.BUCKET, workers.KEY, workers.NAME, s3.etag(i), workers.sequencer(i), None)
              for i in range(20)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda ev: producer.ingest(s3, layout, ev), events[::-1]))
    assert outcomes[0] == "installed" and set(outcomes[1:]) <= {"installed", "stale"}
    assert open(os.path.join(mount, "models", workers.NAME), "rb").read() == workers.version_bytes(19, 64 << 10)
