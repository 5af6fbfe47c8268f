"""Persistence of the local cloud: its whole AWS state and data survive a crash, a reboot, an upgrade.

What is kept, under ``<state>/local/<stack>/``:

- ``state/``: every moto backend of every service the cloud served (every account and region,
  with the same ids), the fidelity layer's own state (due lifecycle transitions, S3's sequencer,
  the timestamps it stamps on models), CloudWatch log events, and the asynchronous event queue;
- ``s3/blobs/``: S3 object bodies and uploaded parts, one file each, never rewritten;
- ``efs/``: the file systems' files (the handlers write there directly, as on EFS).

**The mechanism: a write-ahead journal of changed units, checkpointed.** A request that may
change something runs inside a shared gate; moto's models report what it touched (a backend, an
S3 key, a log stream, a queued event: see ``units``). Before the response is sent, one committer
thread takes the gate exclusive for the moment it pickles just those units, then appends them as
one checksummed record to the journal and fdatasyncs it (group commit: every request that
finished meanwhile rides on the same record). Bodies are written to their own files and fsync'd
before moto even sees the request, so an acknowledged PUT is on disk twice over: its body, then
the record naming it. When the journal grows past 64 MiB, or on every start, a checkpoint writes
the whole state as new files and atomically replaces the fsync'd manifest that names them.

Why this one:

- **Crash-consistent.** A record is all of one commit's units or, torn by a crash, nothing (its
  checksum fails and reading stops there); a restore is the checkpoint plus whole records, which
  is exactly some instant between two commits. A change that spans services (a function and its
  network interfaces) is in one record. Nothing is answered before its record is on disk.
- **Cheap per call.** A commit pickles only what changed, and large or growing collections are
  saved apart: each S3 key is its own unit (the S3 backend is saved without them), log events go
  as deltas, AWS's managed IAM policies are not saved at all (rebuilt from moto on restore). A
  PutObject costs a few kilobytes and one fdatasync, shared with concurrent requests. Snapshotting
  whole backends per call (LocalStack's on-request strategy) costs in proportion to everything
  stored; snapshotting on a timer or at shutdown loses acknowledged writes on ``kill -9``.
- **Big objects never enter memory.** Bodies stream between sockets and blob files; a completed
  multipart upload is the list of its parts' blob segments, so completing it copies nothing.

Versions: pickles are only as stable as moto's classes, so a snapshot records the persistence
format, moto and Python versions that wrote it (``manifest``), and one written by others is
refused and left untouched; the command says how to get it back (reinstall that moto) or to
delete it (``efsctl down``). An efsctl upgrade with the same format and moto keeps everything.

This package's top level imports nothing heavy: the lifecycle (CLI side) reads ``manifest`` only.
"""
