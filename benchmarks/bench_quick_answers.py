"""Quick answers (issue 13 item 6): wall time of `vtd-sweep --help`, `status` and
`run --dry-run`, each a fresh process, as the user runs them.

    .venv/bin/python benchmarks/bench_quick_answers.py [--repeats 5]

A temporary sweep file of 9 cells; its study is prepared first (study and MLflow experiment
made, 9 trials queued), so that `status` reads a real study. Prints the median and the
slowest wall time of `--repeats` runs per command, the median CPU time (user + system: what a
busy machine changes least), and the heavy modules each one loaded. Exits 1 if a
median is 1 s or more, or if one loaded torch or torchvision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The tests' sweep files (tests/_sweepfiles.py): a grid over data files, as test_cli_quick's.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _lab_data import labelimg_frames, write_lab_clip  # noqa: E402 - found through it
from _sweepfiles import files_sweep_yaml  # noqa: E402 - found through the line above

SWEEP = files_sweep_yaml("quick-bench", {"batch_size": [2, 4, 8], "chunk_size": [2, 3, 4]})

HEAVY = ("torch", "torchvision", "mlflow", "pandas")
LOADED = (
    "import atexit, sys; atexit.register(lambda: print('LOADED', "
    f"[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr))"
)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `vtd-sweep ARGV` in a fresh interpreter, and the heavy
    modules it loaded. CPU time is what a busy machine changes least."""
    command = [sys.executable, "-c", f"{LOADED}\nfrom vtd.cli import program; program({argv!r})"]
    cpu = _children_cpu_s()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    cpu = _children_cpu_s() - cpu
    if done.returncode not in (0,):
        raise SystemExit(f"{argv}: exit {done.returncode}\n{done.stderr}")
    loaded = next(line for line in done.stderr.splitlines() if line.startswith("LOADED"))
    return seconds, cpu, loaded.removeprefix("LOADED ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory(prefix="quick-answers-") as folder:
        sweep = Path(folder) / "sweep.yaml"
        sweep.write_text(SWEEP)
        # `prepare` and `run --dry-run` check the data first: three of the lab's clips
        root = Path(folder) / "data" / "objectattention"
        for subset, sessions in (("train", ("s1", "s2")), ("test", ("s3",))):
            for session in sessions:
                write_lab_clip(
                    root, subset=subset, session=session, setting="set1", frames=labelimg_frames(3)
                )
        prepare = (
            "from vtd.sweep.plan.config import load_sweep; "
            "from vtd.sweep.execute.session import prepare"
        )
        subprocess.run(
            [sys.executable, "-c", f"{prepare}; prepare(load_sweep({str(sweep)!r}))"],
            env=env,
            check=True,
        )
        commands = {
            "--help": ["--help"],
            "status": ["status", str(sweep)],
            "run --dry-run": ["run", str(sweep), "--dry-run"],
        }
        failed = False
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print("| command | median wall | slowest wall | median CPU | loaded |")
        print("| --- | ---: | ---: | ---: | --- |")
        for name, argv in commands.items():
            runs = [timed(argv, env) for _ in range(args.repeats)]
            seconds = [run[0] for run in runs]
            cpu = statistics.median(run[1] for run in runs)
            loaded = runs[-1][2]
            median = statistics.median(seconds)
            failed |= median >= 1.0 or "torch" in loaded
            print(f"| `{name}` | {median:.2f} s | {max(seconds):.2f} s | {cpu:.2f} s | {loaded} |")
        print(json.dumps({"load_average_after": os.getloadavg()[0]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
