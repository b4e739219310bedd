"""Compiling the BPF programs (bcc, clang underneath) and pinning them under the run's bpffs
directory. Each program compiles in a worker process of its own, run as
`python -m testbed.redirect.bpf_compile --run ID --pins DIR --program NAME`: the `--run`
tag lets `testbed clean` find a worker whose parent died, and clang, the slow part, runs on
every CPU at once. The first program creates and pins every map (bpf/include/tb_maps.h);
the others, compiled after it, reuse the pins."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from ..errors import TestbedError
from ..mesh.topology import FINAL_HOP_MARK

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
COMPILE_TIMEOUT = 120.0  # seconds for all of them, then a clear error instead of a hang


def compile_and_pin(pins: str, name: str, prog_type: int, attach_type: int) -> None:
    from bcc import BPF

    cflags = [f"-I{BPF_DIR / 'include'}", f'-DTB_PIN_DIR="{pins}"', f"-DTB_FINAL_HOP_MARK={FINAL_HOP_MARK}"]
    b = BPF(src_file=str(BPF_DIR / f"{name}.c").encode(), cflags=cflags)
    fn = b.load_func(f"tb_{name}".encode(), prog_type, attach_type=attach_type)
    path = f"{pins}/prog_{name}"
    if not os.path.exists(path):
        from .bpffs import obj_pin

        obj_pin(fn.fd, path)


def _worker(run_id: str, pins: str, name: str, prog_type: int, attach_type: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "testbed.redirect.bpf_compile", "--run", run_id, "--pins", pins, "--program", name,
            "--prog-type", str(prog_type), "--attach-type", str(attach_type)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))


def compile_all(run_id: str, pins: str, programs: dict[str, tuple[int, int]],
                timeout: float = COMPILE_TIMEOUT) -> None:
    """Every program, the first alone (it creates the maps), then the rest in parallel."""
    deadline = time.monotonic() + timeout
    names = list(programs)
    for batch in ([names[0]], names[1:]):
        workers = {name: _worker(run_id, pins, name, *programs[name]) for name in batch}
        try:
            for name, proc in workers.items():
                try:
                    _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    raise TestbedError(f"compiling the BPF programs took more than {timeout:g}s") from None
                if proc.returncode != 0:
                    tail = " | ".join(err.strip().splitlines()[-6:])
                    raise TestbedError(f"compiling bpf/{name}.c failed (exit {proc.returncode}): {tail}")
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="compile one BPF program and pin it")
    ap.add_argument("--run", required=True, help="run id (a tag, so clean-up can find this process)")
    ap.add_argument("--pins", required=True)
    ap.add_argument("--program", required=True)
    ap.add_argument("--prog-type", type=int, required=True)
    ap.add_argument("--attach-type", type=int, required=True)
    args = ap.parse_args(argv)
    compile_and_pin(args.pins, args.program, args.prog_type, args.attach_type)
    return 0


if __name__ == "__main__":
    sys.exit(main())
