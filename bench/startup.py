"""`efsctl --help` start-up against `python -c "import typer"`, in the same environment.

Runs the two commands interleaved (so machine noise hits both alike) and prints the medians
and their ratio. Budget (DESIGN section 6): ratio <= 1.15.

    python bench/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("efsctl")
    efsctl = [str(script)] if script.exists() else [shutil.which("efsctl") or "", ]
    if not efsctl[0]:
        efsctl = [sys.executable, "-m", "efsctl"]
    baseline = [sys.executable, "-c", "import typer"]
    for _ in range(3):  # warm the page cache
        timed(efsctl + ["--help"]), timed(baseline)
    ours, base = [], []
    for _ in range(args.runs):
        ours.append(timed(efsctl + ["--help"]))
        base.append(timed(baseline))
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"efsctl --help      median {m_ours * 1000:7.1f} ms  ({' '.join(efsctl)})")
    print(f"python -c 'import typer' median {m_base * 1000:7.1f} ms")
    print(f"ratio {m_ours / m_base:.3f}  (budget <= 1.15; {args.runs} interleaved runs)")


if __name__ == "__main__":
    main()
