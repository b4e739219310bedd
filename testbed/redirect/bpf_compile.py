"""Getting the BPF programs of bpf/ into a run: loaded, and pinned under the run's bpffs
directory (`prog_<name>`, maps by their names).

- Usually from the compile cache (bpf_cache.py): no compile at all, libbpf loads the
  recorded instructions (bpf_load.py).
- A program missing from the cache is compiled first by bcc, each in a worker process of
  its own, run as `python -m testbed.redirect.bpf_compile --run ID --pins DIR --program
  NAME --cache DIR`: the `--run` tag lets `testbed clean` find a worker whose parent died,
  and clang, the slow part, runs on every CPU at once. A worker loads its program once
  with bcc (against scratch maps under the run's pins) to read back what bcc produced.
- Without a usable cache (switched off, not root's, or a record the kernel refuses), bcc
  compiles and pins each program in the run as before the cache: the first worker creates
  and pins every map (bpf/include/tb_maps.h), the others, started after it, reuse them.
`testbed doctor` always compiles with bcc (compile_and_pin)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import TestbedError
from ..mesh.topology import FINAL_HOP_MARK
from . import bpf_cache, bpf_load

BPF_DIR = bpf_cache.BPF_DIR
COMPILE_TIMEOUT = 120.0  # seconds for all of them, then a clear error instead of a hang


def constants() -> list[str]:
    """The -D constants every program is compiled with, other than its pin directory."""
    return [f"-DTB_FINAL_HOP_MARK={FINAL_HOP_MARK}"]


def _bcc(pins: str, name: str):
    from bcc import BPF

    cflags = [f"-I{BPF_DIR / 'include'}", f'-DTB_PIN_DIR="{pins}"', *constants()]
    return BPF(src_file=str(BPF_DIR / f"{name}.c").encode(), cflags=cflags)


def compile_and_pin(pins: str, name: str, prog_type: int, attach_type: int) -> None:
    """bcc compiles the program and loads it against the maps pinned under `pins`
    (creating those missing), then pins it there."""
    b = _bcc(pins, name)
    fn = b.load_func(f"tb_{name}".encode(), prog_type, attach_type=attach_type)
    path = f"{pins}/prog_{name}"
    if not os.path.exists(path):
        from .bpffs import obj_pin

        obj_pin(fn.fd, path)


def compile_record(entry: Path, scratch: str, name: str, prog_type: int, attach_type: int) -> None:
    """bcc compiles and loads the program against fresh maps pinned under `scratch` (so
    that the verifier has accepted exactly these instructions), its record goes to the
    cache entry, and the scratch maps are removed."""
    import bcc

    os.makedirs(scratch, exist_ok=True)
    try:
        b = _bcc(scratch, name)
        b.load_func(f"tb_{name}".encode(), prog_type, attach_type=attach_type)
        code = b.dump_func(f"tb_{name}".encode())
        license = bcc.lib.bpf_module_license(b.module).decode()
        bpf_cache.write(entry, bpf_cache.extract(code, license, name, scratch))
        b.cleanup()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _worker(run_id: str, pins: str, name: str, prog_type: int, attach_type: int,
            entry: Path | None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "testbed.redirect.bpf_compile", "--run", run_id, "--pins", pins, "--program", name,
            "--prog-type", str(prog_type), "--attach-type", str(attach_type)]
    if entry is not None:
        argv += ["--cache", str(entry)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))


def _run_workers(run_id: str, pins: str, programs: dict[str, tuple[int, int]], batches: list[list[str]],
                 entry: Path | None, deadline: float) -> None:
    for batch in batches:
        workers = {name: _worker(run_id, pins, name, *programs[name], entry) for name in batch}
        try:
            for name, proc in workers.items():
                try:
                    _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    raise TestbedError(f"compiling the BPF programs took more than {COMPILE_TIMEOUT:g}s") from None
                if proc.returncode != 0:
                    tail = " | ".join(err.strip().splitlines()[-6:])
                    raise TestbedError(f"compiling bpf/{name}.c failed (exit {proc.returncode}): {tail}")
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _bcc_version() -> str:
    """bcc's version without importing it (a tenth of a second, and a big library)."""
    spec = importlib.util.find_spec("bcc")
    if spec is None or not spec.submodule_search_locations:
        raise TestbedError("bcc is not installed (python3-bpfcc; as root: make setup)")
    return (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()


def cache_entry() -> Path | None:
    """This content's directory in the cache, created if needed; None when the cache is
    off or not safe to use (not root's, or writable by others)."""
    base = bpf_cache.root()
    if base is None:
        return None
    try:
        entry = bpf_cache.ensure(base / bpf_cache.key(constants(), _bcc_version()))
    except OSError:
        return None
    return entry if all(bpf_cache.usable(d) for d in (base, entry)) else None


def load_all(run_id: str, pins: str, programs: dict[str, tuple[int, int]],
             timeout: float = COMPILE_TIMEOUT) -> tuple[str, str | None]:
    """Every program loaded and pinned in the run. Returns how, and why the cache was not
    used when it was not: "cache" (nothing compiled), "compiled" (the missing records
    compiled now, then loaded from the cache) or "bcc" (compiled and loaded by bcc)."""
    deadline = time.monotonic() + timeout
    entry = cache_entry()
    why = "the cache is switched off or not root's" if entry is None else None
    if entry is not None:
        records = {name: bpf_cache.read(entry, name) for name in programs}
        missing = [name for name, r in records.items() if r is None]
        if missing:  # all at once: a record needs no map of another program
            _run_workers(run_id, pins, programs, [missing], entry, deadline)
            records = {name: bpf_cache.read(entry, name) for name in programs}
        try:
            if any(r is None for r in records.values()):
                raise TestbedError("a compiled program left no record")
            bpf_load.load(pins, records, programs)
            return ("compiled" if missing else "cache"), None
        except (OSError, TestbedError) as exc:
            why = str(exc)
    names = [n for n in programs if not os.path.exists(f"{pins}/prog_{n}")]
    if names:
        _run_workers(run_id, pins, programs, [names[:1], names[1:]], None, deadline)
    return "bcc", why


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="compile one BPF program: into the compile cache, or pinned in the run")
    ap.add_argument("--run", required=True, help="run id (a tag, so clean-up can find this process)")
    ap.add_argument("--pins", required=True)
    ap.add_argument("--program", required=True)
    ap.add_argument("--prog-type", type=int, required=True)
    ap.add_argument("--attach-type", type=int, required=True)
    ap.add_argument("--cache", help="write the program's record into this cache entry instead of pinning it")
    args = ap.parse_args(argv)
    if args.cache:
        compile_record(Path(args.cache), f"{args.pins}/compile_{args.program}", args.program, args.prog_type,
                       args.attach_type)
    else:
        compile_and_pin(args.pins, args.program, args.prog_type, args.attach_type)
    return 0


if __name__ == "__main__":
    sys.exit(main())
