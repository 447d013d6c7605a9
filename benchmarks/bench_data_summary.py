"""`vtd-sweep data` on 10,000 frames of lab-shaped ObjectAttention data: target under 10 s.

    /work/main/.venv/bin/python benchmarks/bench_data_summary.py [--frames 10000] [--keep DIR]

Writes, into a temporary folder, the lab's layout (`images/<session>/<setting>/<frame>.ppm`,
`annotations/{train,test}/<session>/<setting>/S11.txt`) for the lab's 10 participants, 5
settings each: labelImg-route files (header `frame x_min ...` with spaces, `, ` between
fields, 8-digit frames) and, for every 5th setting, OpenPose-route files (no header,
`00012.json` frame fields, one `None` row in 50, skipped with `on_bad_frame: skip`). Frames
are valid binary PPM (P6) files of 640x480: a header, then the pixel bytes as a sparse file
(black), so that 10,000 distinct files cost little disk; `vtd-sweep data` reads only headers.

Then runs `vtd-sweep data sweep.yaml --csv` in a fresh process (three times, cold start each:
Python, imports, load the sweep file, index, split, read every frame's image header,
summarise) and prints the wall time and the process's CPU time. Exits 1 when the best wall
time is over the target.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTICIPANTS = (
    "Shiva",
    "Gabriele",
    "Simone",
    "Andrea",
    "Giulia",
    "Elisa",
    "Stefano",
    "Maria",
    "Francesco",
    "Raffaele",
)
TEST = ("Shiva", "Gabriele", "Simone")
SETTINGS = 5
WIDTH, HEIGHT = 640, 480
TARGET_S = 10.0
HEADER = "frame x_min y_min x_max y_max gaze_x gaze_y"


def write_ppm(path: Path) -> None:
    """A valid 640x480 P6 file: header, then the pixels as a hole (zeros) in a sparse file."""
    header = f"P6\n{WIDTH} {HEIGHT}\n255\n".encode("ascii")
    with path.open("wb") as out:
        out.write(header)
        out.truncate(len(header) + WIDTH * HEIGHT * 3)


def write_data(root: Path, frames: int) -> int:
    """The lab-shaped data set; returns the number of annotation lines written."""
    per_setting = frames // (len(PARTICIPANTS) * SETTINGS)
    lines = 0
    for number, participant in enumerate(PARTICIPANTS):
        subset = "test" if participant in TEST else "train"
        for setting in range(SETTINGS):
            name = f"setting{setting}"
            images = root / "images" / participant / name
            images.mkdir(parents=True)
            annotation = root / "annotations" / subset / participant / name / "S11.txt"
            annotation.parent.mkdir(parents=True)
            openpose = (number * SETTINGS + setting) % 5 == 4
            rows = [] if openpose else [HEADER]
            for frame in range(per_setting):
                stem = f"{frame:05d}" if openpose else f"{frame:08d}"
                write_ppm(images / f"{stem}.ppm")
                if openpose:
                    box = "None, None, None, None" if frame % 50 == 7 else "250, 60, 330, 166"
                    rows.append(f"{stem}.json, {box}, 480.0, 330.5")
                else:
                    gaze = "-1.0, -1.0" if frame % 10 == 9 else "350.5, 200.0"
                    rows.append(f"{stem}, 206, 24, 300, 144, {gaze}")
            annotation.write_text("\n".join(rows) + "\n")
            lines += per_setting
    return lines


SWEEP = """\
study: bench-data
sampler: grid
data:
  sources: [data]
  on_bad_frame: skip
  validation: {groups: 2}
training:
  model: {variant: small}
search_space:
  batch_size: [16]
  chunk_size: [3]
"""


def time_command(sweep: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, its stdout) of one `vtd-sweep data --csv` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vtd.cli", "data", str(sweep), "--csv"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"vtd-sweep data failed ({done.returncode}): {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the data here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        lines = write_data(folder / "data", args.frames)
        print(f"wrote {lines} frames in {time.perf_counter() - start:.1f} s under {folder}")
        sweep = folder / "sweep.yaml"
        sweep.write_text(SWEEP)
        runs = [time_command(sweep) for _ in range(args.repeats)]
        print(runs[0][2].strip())
        load = os.getloadavg()[0]
        for wall, cpu, _ in runs:
            print(f"vtd-sweep data: {wall:.2f} s wall, {cpu:.2f} s CPU (load {load:.1f})")
        best = min(wall for wall, _, _ in runs)
        verdict = "ok" if best <= TARGET_S else "OVER"
        print(f"best {best:.2f} s for {lines} frames; target {TARGET_S:.0f} s: {verdict}")
        return 0 if best <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
