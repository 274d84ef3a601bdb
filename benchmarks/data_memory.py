"""Peak memory of one training epoch's data: crackkit's streaming pipeline against preloading.

A CRACK500-sized training folder (``--n`` 3,307 JPEG crops of 640x360 with PNG masks, about 10%
crack-free) is generated once (not timed, not measured; ``--dir`` keeps and reuses it). Each
method then runs in a fresh Python process, which reports its own peak:

(a) ``crackkit w=K``: crackkit's training data pipeline as :func:`crackkit.train.train` builds it:
    :func:`crackkit.data.folder.scan_split` (which reads every mask once), a training
    :class:`crackkit.data.dataset.CrackDataset` (decode per item, augmentation, uint8 out), a
    :class:`crackkit.data.sampling.FrequencySampler` and a ``DataLoader`` of batch 4 with
    ``num_workers=K`` (``--workers``, default 0 and 2), iterated over one whole epoch.
(b) ``preload``: the original way: every image decoded up front and kept as a float32 array
    (masks kept as bool, which is less than the original keeps, so this figure is a lower bound),
    then one epoch iterated over the arrays. When the arrays would not fit in the memory available
    (or with ``--preload-limit``), only that many images are preloaded and the peak is
    extrapolated linearly: ``before + (peak - before) * n / loaded``, where ``before`` is the
    process's resident memory just before preloading.

Peaks: the main process's ``VmHWM`` (the kernel's resident high-water mark) plus, for each
DataLoader worker, the last ``VmHWM`` read while it lived (a sampler thread reads ``/proc`` every
20 ms). Their sum counts pages shared between the main process and its forked workers once per
process, so it is an upper bound; the table also gives the highest sampled sum of proportional set
sizes (PSS, shared pages split between the processes that share them).

Usage: ``.venv/bin/python benchmarks/data_memory.py [--n 3307] [--dir DIR] [--workers 0 2]
[--preload-limit N]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import CRACK500_TRAIN_CROPS, cpu_line, load_average, machine_line, make_crack_folder

HEIGHT, WIDTH = 360, 640
MB = 1024 * 1024


def _status_kb(pid: int | str, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmHWM, VmRSS), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


class PeakSampler(threading.Thread):
    """Tracks the ``VmHWM`` of this process's children and the peak PSS sum of the whole tree."""

    def __init__(self, interval: float = 0.02, pss_every: int = 5) -> None:
        super().__init__(daemon=True)
        self.interval, self.pss_every = interval, pss_every
        self.children_hwm_kb: dict[int, int] = {}
        self.pss_peak_kb = 0
        self._stop_event = threading.Event()

    def _children(self) -> list[int]:
        me = os.getpid()
        try:
            text = Path(f"/proc/{me}/task/{me}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def run(self) -> None:
        tick = 0
        me = os.getpid()
        while not self._stop_event.is_set():
            children = self._children()
            for pid in children:
                hwm = _status_kb(pid, "VmHWM")
                if hwm is not None:
                    self.children_hwm_kb[pid] = max(hwm, self.children_hwm_kb.get(pid, 0))
            if tick % self.pss_every == 0:
                total = _pss_kb(me) + sum(_pss_kb(pid) for pid in children)
                self.pss_peak_kb = max(self.pss_peak_kb, total)
            tick += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _report(sampler: PeakSampler, extra: dict) -> None:
    sampler.stop()
    main_kb = _status_kb("self", "VmHWM") or 0
    workers_kb = sum(sampler.children_hwm_kb.values())
    print(
        json.dumps(
            {
                "main_peak_mb": main_kb / 1024,
                "workers_peak_mb": workers_kb / 1024,
                "n_workers_seen": len(sampler.children_hwm_kb),
                "peak_rss_mb": (main_kb + workers_kb) / 1024,
                "peak_pss_mb": sampler.pss_peak_kb / 1024,
                **extra,
            }
        )
    )


def child_crackkit(folder: Path, workers: int) -> None:
    """One epoch of crackkit's training data pipeline; prints the child's JSON report."""
    import torch
    from torch.utils.data import DataLoader

    from crackkit.config import RunConfig
    from crackkit.data.dataset import CrackDataset
    from crackkit.data.folder import scan_split
    from crackkit.data.sampling import FrequencySampler

    sampler = PeakSampler()
    sampler.start()
    start = time.perf_counter()
    cfg = RunConfig(
        dataset=str(folder),
        input_height=HEIGHT,
        input_width=WIDTH,
        batch_size=4,
        num_workers=workers,
    )
    samples = scan_split(folder, "train")
    dataset = CrackDataset(samples, cfg, train=True)
    order = FrequencySampler(
        dataset.labels,
        frequency_sampling=cfg.frequency_sampling,
        use_negatives=cfg.use_negatives,
        seed=cfg.seed,
    )
    order.set_epoch(0)
    dataset.set_epoch(0)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=order,
        num_workers=workers,
        persistent_workers=False,
    )
    images = 0
    checksum = torch.zeros((), dtype=torch.int64)
    for batch in loader:
        images += batch["image"].shape[0]
        checksum += batch["image"][:, :, ::64, ::64].sum()
    _report(sampler, {"images": images, "seconds": time.perf_counter() - start})


def child_preload(folder: Path, limit: int | None) -> None:
    """Preload as float32 (as the original does), then one epoch; prints the JSON report."""
    import numpy as np
    from torch.utils.data import DataLoader

    from crackkit.data.folder import read_image, read_mask, scan_split

    sampler = PeakSampler()
    sampler.start()
    start = time.perf_counter()
    samples = scan_split(folder, "train", check=False)
    n_total = len(samples)
    loaded = samples if limit is None else samples[:limit]
    before_kb = _status_kb("self", "VmRSS") or 0
    images, masks = [], []
    for s in loaded:
        images.append(read_image(s.image).astype(np.float32) / 255.0)
        masks.append(read_mask(s.mask))
    preloaded = list(zip(images, masks, strict=True))
    items = 0
    for image, _mask in DataLoader(preloaded, batch_size=4, shuffle=True, num_workers=0):
        items += image.shape[0]
    extra = {
        "images": items,
        "seconds": time.perf_counter() - start,
        "loaded": len(loaded),
        "n_total": n_total,
        "before_mb": before_kb / 1024,
        "float32_bytes": int(sum(a.nbytes for a in images)),
    }
    _report(sampler, extra)


def _run_child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and a final JSON line; return that JSON as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=CRACK500_TRAIN_CROPS)
    parser.add_argument("--dir", type=Path, default=None, help="folder to generate into / reuse")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument(
        "--preload-limit",
        type=int,
        default=None,
        help="preload at most this many images and extrapolate (default: all that fit)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("crackkit", "preload"), help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)

    if args.child == "crackkit":
        child_crackkit(args.dir, args.child_workers)
        return {}
    if args.child == "preload":
        child_preload(args.dir, args.preload_limit)
        return {}

    started = time.perf_counter()
    load_start = load_average()
    temp = None
    folder = args.dir
    if folder is None:
        temp = tempfile.mkdtemp(prefix="crackkit-data-memory-")
        folder = Path(temp)
    try:
        make_crack_folder(folder, args.n, HEIGHT, WIDTH, split="train", seed=args.seed)
        per_image = HEIGHT * WIDTH * 3 * 4
        limit = args.preload_limit
        fit = int((_mem_available_mb() - 2048) * MB * 0.8 // per_image)
        if limit is None and fit < args.n:
            limit = max(1, fit)
            print(
                f"only about {fit} float32 images fit in the memory available now: "
                f"preloading {limit} and extrapolating"
            )
        if limit is not None and limit >= args.n:
            limit = None
        print(
            f"one training epoch over {args.n} crops {HEIGHT}x{WIDTH} (JPEG + PNG mask) in "
            f"{folder}; " + machine_line()
        )

        rows = []
        for w in args.workers:
            rep = _run_child(
                ["--child", "crackkit", "--child-workers", str(w), "--dir", str(folder)]
            )
            rows.append((f"crackkit w={w}", rep, ""))
        pre_args = ["--child", "preload", "--dir", str(folder)]
        if limit is not None:
            pre_args += ["--preload-limit", str(limit)]
        pre = _run_child(pre_args)
        note = ""
        base_peak = pre["peak_rss_mb"]
        if pre["loaded"] < pre["n_total"]:
            scale = pre["n_total"] / pre["loaded"]
            base_peak = pre["before_mb"] + (pre["peak_rss_mb"] - pre["before_mb"]) * scale
            note = (
                f"measured {pre['peak_rss_mb']:.0f} MB with {pre['loaded']} images, "
                f"extrapolated linearly to {pre['n_total']}"
            )
        if note:
            pre["peak_pss_mb"] = None
        rows.append(("preload f32", pre | {"peak_rss_mb": base_peak}, note))

        print(
            f"{'method':<14} {'peak RSS MB':>12} {'main MB':>9} {'workers MB':>11} "
            f"{'peak PSS MB':>12} {'images':>7} {'seconds':>8}  note"
        )
        for name, rep, row_note in rows:
            print(
                f"{name:<14} {rep['peak_rss_mb']:>12.0f} {rep['main_peak_mb']:>9.0f} "
                f"{rep['workers_peak_mb']:>11.0f} {_mb(rep['peak_pss_mb']):>12} "
                f"{rep['images']:>7d} {rep['seconds']:>8.1f}  {row_note}"
            )
        ck_rows = [rep for name, rep, _ in rows if name.startswith("crackkit")]
        worst = max(r["peak_rss_mb"] for r in ck_rows)
        print(
            f"peak RSS = main process VmHWM + each worker's VmHWM (shared pages counted per "
            f"process: an upper bound); preload holds {pre['float32_bytes'] / MB:.0f} MB of "
            f"float32 pixels for {pre['loaded']} images; crackkit worst {worst:.0f} MB vs "
            f"preload {base_peak:.0f} MB ({base_peak / worst:.1f}x)"
        )
        result = {
            "peak_rss_mb": round(worst, 1),
            "baseline_peak_rss_mb": round(base_peak, 1),
            "ratio": round(base_peak / worst, 2),
            "crackkit": {
                name.split()[-1]: {
                    "peak_rss_mb": round(rep["peak_rss_mb"], 1),
                    "main_peak_mb": round(rep["main_peak_mb"], 1),
                    "workers_peak_mb": round(rep["workers_peak_mb"], 1),
                    "peak_pss_mb": round(rep["peak_pss_mb"], 1),
                    "seconds": round(rep["seconds"], 1),
                }
                for name, rep, _ in rows
                if name.startswith("crackkit")
            },
            "baseline_measured_peak_rss_mb": round(pre["peak_rss_mb"], 1),
            "baseline_images_loaded": pre["loaded"],
            "baseline_extrapolated": pre["loaded"] < pre["n_total"],
            "n": args.n,
            "height": HEIGHT,
            "width": WIDTH,
            "total_seconds": round(time.perf_counter() - started, 1),
            "load_start": load_start,
            "load_end": load_average(),
        }
        print(json.dumps(result))
        return result
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
