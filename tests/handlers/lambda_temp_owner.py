"""A copy that dies mid-write: creates a temp through the store, writes part of it, says so on
stdout, then waits on stdin until killed (run as ``python lambda_temp_owner.py MOUNT``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambda_code"))

import efs_store  # noqa: E402

layout = efs_store.Layout(sys.argv[1])
fd, path = layout.create_temp("model")
os.write(fd, b"\0" * 4096)
print(path, flush=True)
sys.stdin.read()  # never returns: the test kills this process
