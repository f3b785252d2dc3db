"""Run a module as its own process and report that process's own peak RSS.

    python -m bench.peak -m indexer export --db catalog.db

`ru_maxrss` from `wait4` is not the child's own: Linux carries the parent's peak
into a child started by vfork, as Python's subprocess starts them, so once the
benchmark had mapped a 254,000-model catalog in process (the site measurement),
every later child "peaked" at the benchmark's own 340 MB. `VmHWM` in
/proc/self/status is the high-water mark of the child's own address space after
exec. It is written to stderr as the last line, `bench.peak VmHWM <kB> kB`.
"""

from __future__ import annotations

import atexit
import runpy
import sys

MARK = "bench.peak VmHWM"


def report():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    sys.stderr.write(f"{MARK} {line.split()[1]} kB\n")
                    sys.stderr.flush()
    except OSError:  # not Linux: run_child falls back to ru_maxrss
        pass


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        sys.exit("usage: python -m bench.peak -m MODULE [ARGS...]")
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    atexit.register(report)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
