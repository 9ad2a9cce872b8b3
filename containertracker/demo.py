"""A real demo: an array job with max_parallel on the local engine, states and outputs.

Run ``python -m containertracker.demo [docker|podman]`` (the README's demo command does the
set-up first). Eight tasks each compute a little and print; at most three run at once.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import containertracker
from containertracker import JobState, JobTemplate

IMAGE = "containertracker/busybox:latest"
SCRIPT = (
    'echo "task $TASK_ID on $(hostname): sum 1..$((TASK_ID * 1000)) = '
    "$(seq $((TASK_ID * 1000)) | awk '{s+=$1} END {print s}')\"; sleep 1"
)


def main(backend: str = "docker") -> int:
    """Submit the array, print a state line whenever it changes, then every task's output."""
    outdir = Path(tempfile.mkdtemp(prefix="containertracker-demo-"))
    session = f"demo-{int(time.time())}"
    with containertracker.new_job_tracker(backend, session) as tracker:
        assert isinstance(tracker, containertracker.Monitorer)
        machine = tracker.get_all_machines()[0]
        print(f"engine host {machine.name}: {machine.cores_per_socket} cores, {backend}")
        template = JobTemplate(
            job_category=IMAGE,
            remote_command="sh",
            args=("-c", SCRIPT),
            output_path=str(outdir / "task-$DRMAA2_INDEX$.out"),
        )
        array_id = tracker.add_array_job(template, 1, 8, 1, max_parallel=3)
        ids = tracker.list_array_jobs(array_id)
        print(f"array {array_id}: {len(ids)} tasks, at most 3 at once")
        last = ""
        while True:
            states = [tracker.job_state(job_id)[0] for job_id in ids]
            line = "  ".join(f"{n}:{s.name.lower()}" for n, s in enumerate(states, start=1))
            if line != last:
                print(f"{time.strftime('%H:%M:%S')}  {line}")
                last = line
            if all(s.terminal for s in states):
                break
            time.sleep(0.2)
        failed = 0
        for task, job_id in enumerate(ids, start=1):
            tracker.wait(job_id, 60)  # returns once the output file is written
            failed += tracker.job_state(job_id)[0] is JobState.FAILED
            print(f"task {task} output: {(outdir / f'task-{task}.out').read_text().strip()}")
            tracker.delete_job(job_id)
    print(f"done: {len(ids) - failed} succeeded, {failed} failed (outputs in {outdir})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
