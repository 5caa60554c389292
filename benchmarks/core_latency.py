"""How far apart the host has put this machine's first two CPUs: the one-way latency of a
cache line handed between them, in nanoseconds.

    python benchmarks/core_latency.py                          # one reading, JSON
    python benchmarks/core_latency.py --samples 60 --interval 1  # watch it move, one line each

On the project's 2-vCPU KVM guests the host moves the vCPUs between its cores while a
benchmark runs. On the AMD EPYC (Zen 4) guests a cache line then takes about 40 ns or about
170 ns to go from one vCPU to the other (docs/benchmarks.md, "Where the vCPUs sit"). In the
far placement a 2-thread training step runs 45-52% slower and a 2-thread round about 35%
(oneDNN's bf16 weight gradients alone up to 2.6x); one thread is not affected.
Seconds measured with 2 threads therefore say little without this reading beside them:
``round.py`` records it right before and right after each timed round. Read it on an idle
machine only: while other threads keep both CPUs busy, the probe's threads wait for their turn
and it reads microseconds.

The probe is a short C program (two threads pinned to the two CPUs, spinning on one atomic
flag), compiled once with the system's C compiler into the temp folder and run as its own
process, so it touches none of the caller's threads. Where there is no C compiler or fewer than
two usable CPUs, :func:`core_to_core_ns` returns None.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Two threads pinned to CPUs a and b hand a flag back and forth `iterations` times per
# repeat; it prints each repeat's one-way time (half a round trip) in ns.
C_SOURCE = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int flag __attribute__((aligned(64)));
static long iterations;
static int cpu_b;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *unused) {
    (void)unused;
    if (pin(cpu_b) != 0) exit(3);
    for (long i = 0; i < iterations; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 1) {}
        atomic_store_explicit(&flag, 0, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    int cpu_a = atoi(argv[1]), repeats = atoi(argv[4]);
    cpu_b = atoi(argv[2]);
    iterations = atol(argv[3]);
    if (pin(cpu_a) != 0) return 3;
    for (int r = 0; r < repeats; r++) {
        pthread_t thread;
        struct timespec t0, t1;
        atomic_store(&flag, 0);
        if (pthread_create(&thread, NULL, answer, NULL) != 0) return 4;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < iterations; i++) {
            atomic_store_explicit(&flag, 1, memory_order_release);
            while (atomic_load_explicit(&flag, memory_order_acquire) != 0) {}
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_join(thread, NULL);
        double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
        printf("%.1f\n", ns / iterations / 2);
    }
    return 0;
}
"""


def probe_binary() -> Path | None:
    """The compiled probe, built on first use into the temp folder (keyed by its source);
    None where no C compiler is found or it fails to build."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    digest = hashlib.sha256(C_SOURCE.encode()).hexdigest()[:12]
    binary = Path(tempfile.gettempdir()) / f"netinv-core-latency-{digest}"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory() as folder:
        source, built = Path(folder) / "probe.c", Path(folder) / "probe"
        source.write_text(C_SOURCE)
        done = subprocess.run([compiler, "-O2", "-pthread", "-o", str(built), str(source)],
                              capture_output=True)
        if done.returncode != 0:
            return None
        os.replace(built, binary)  # atomic: processes that race each install a whole file
    return binary


def core_to_core_ns(iterations: int = 100_000, repeats: int = 3) -> float | None:
    """Median one-way latency, in ns, of a cache line handed between the first two CPUs this
    process may run on (``repeats`` readings of ``iterations`` round trips each, about 10-40
    ms in all). None where there is no C compiler or fewer than two CPUs, or the probe fails.
    """
    if iterations < 1 or repeats < 1:
        raise ValueError(f"`iterations` and `repeats` must be >= 1, got iterations="
                         f"{iterations!r}, repeats={repeats!r}.")
    cpus = sorted(os.sched_getaffinity(0))
    binary = probe_binary() if len(cpus) >= 2 else None
    if binary is None:
        return None
    done = subprocess.run([str(binary), str(cpus[0]), str(cpus[1]), str(iterations),
                           str(repeats)], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return round(statistics.median(float(line) for line in done.stdout.split()), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1, help="readings to take (>= 1)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between readings (>= 0)")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.interval < 0:
        parser.error(f"--samples takes N >= 1 and --interval S >= 0, got samples="
                     f"{args.samples}, interval={args.interval}")
    start = time.monotonic()
    for i in range(args.samples):
        if i:
            time.sleep(args.interval)
        print(json.dumps({"t_s": round(time.monotonic() - start, 1),
                          "core_to_core_ns": core_to_core_ns()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
