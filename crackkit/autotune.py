"""Speed switches chosen by a short measurement on the machine at hand, cached per machine and size.

Which way of running SegDecNet is fastest depends on the CPU (AVX512-BF16 or AMX, cache sizes),
the input size and the precision: on one 2-core CPU the 15x15 convolution by FFT
(:mod:`crackkit.fftconv`) trains faster than the direct one, on another (AMX) slower. So the
``auto`` value of each speed switch of :class:`~crackkit.config.RunConfig` is settled the way
``cudnn.benchmark`` settles a convolution algorithm: the first time a model of that size is
needed on that machine, each candidate runs a few times on random data and the fastest wins.

* ``amp``: bf16 autocast against float32, on CUDA with bf16 and on CPUs with native bf16
  instructions (elsewhere bf16 is emulated and float32 is taken without measuring);
* ``channels_last``: on against off, under the chosen precision;
* ``fft_conv``: the FFT convolution against the direct one, the 15x15 layer alone at the run's
  batch and map size (the rest of the network is the same either way);
* ``eval_batch_size`` 0 (``auto``): batches of 1, 2, 4 and 8 images in inference, the fewest
  seconds per image.

Training and inference are decided apart (forward + backward against forward alone). The whole
network is timed at batch 1 for training and at the evaluation batch (4 unless given) for
inference, one warm-up call and :data:`ROUNDS` timed calls per candidate in alternating order,
the minimum taken. A decision goes into a small JSON cache
(:func:`cache_path`; ``CRACKKIT_CACHE_DIR`` moves it) under a key of the machine (CPU model and
flags, torch version and threads, GPU name) and the size, so later runs on the machine reuse it
without measuring. A measurement is bounded by :data:`BUDGET_SECONDS`: what is left undecided
when it runs out takes the fixed rule (``static`` in the record); the decision under way when
it runs out still finishes. Processes that start together
(a sweep's runs) measure one at a time under a lock file beside the cache, and the later ones
read the first one's choices.

Results: the switches change how a function is computed, not which function (the FFT
convolution and the inference FeatureNorm are the same functions; channels-last and the
evaluation batch change the order of floating-point sums); the precision is that of the chosen
path (bf16 or float32), recorded with the run. The measurement runs in a forked random state, so
a seeded run draws the same numbers whether or not it measured.

``CRACKKIT_AUTOTUNE=static`` skips every measurement and applies the fixed rules of
:mod:`crackkit.runtime` (the test suite does, for speed); a distributed run uses them too, so
that every process takes the same switches.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from crackkit.files import atomic_write_json

try:
    import fcntl
except ImportError:  # Windows: no lock, each process measures for itself
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BATCH_CANDIDATES",
    "BUDGET_SECONDS",
    "Choice",
    "ROUNDS",
    "SwitchCache",
    "cache_path",
    "cpu_flags",
    "cpu_has_bf16",
    "cpu_model",
    "machine_fingerprint",
    "machine_key",
    "measuring",
    "pick_fastest",
    "resolutions",
    "record_resolution",
    "clear_resolutions",
    "fixed_rules",
    "MeasurementError",
]

_log = logging.getLogger("crackkit")

CACHE_ENV = "CRACKKIT_CACHE_DIR"
MODE_ENV = "CRACKKIT_AUTOTUNE"
CACHE_FILE = "speed_switches.json"
CACHE_VERSION = 1
#: A cache file larger than this is not read (it is someone else's file, or damaged).
MAX_CACHE_BYTES = 1 << 20
#: Timed calls per candidate after its warm-up call.
ROUNDS = 2
#: Seconds one resolution (all switches of one model and size) may spend measuring.
BUDGET_SECONDS = 40.0
#: Longest wait for another process's measurement before measuring anyway.
LOCK_SECONDS = 300.0
#: Evaluation batch sizes tried in inference.
BATCH_CANDIDATES = (1, 2, 4, 8)


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 20)
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> dict[str, bool]:
    """Whether the CPU has the instructions that make bf16 fast: AVX512-BF16, AMX-BF16."""
    flags = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {"avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def cpu_has_bf16() -> bool:
    """True on a CPU with native bf16 instructions (AVX512-BF16 or AMX)."""
    return any(cpu_flags().values())


#: Raised whenever crackkit's own kernels change what is fast (FeatureNorm's fused training path
#: made channels-last training pay off, revision 2): choices measured with older code are then
#: measured again instead of being read from the cache.
KERNELS_REVISION = 2


def machine_fingerprint(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a measured choice depends on besides the model and its size: the machine, torch and
    :data:`KERNELS_REVISION`."""
    device = torch.device(device)
    info: dict[str, Any] = {
        "kernels": KERNELS_REVISION,
        "cpu": cpu_model(),
        **cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_key(device: torch.device | str = "cpu") -> str:
    """A short hash of :func:`machine_fingerprint`."""
    text = json.dumps(machine_fingerprint(device), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path() -> Path:
    """``$CRACKKIT_CACHE_DIR/speed_switches.json``, else ``~/.cache/crackkit/`` (or
    ``$XDG_CACHE_HOME/crackkit/``)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / CACHE_FILE
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        base = Path(xdg) if xdg else Path.home() / ".cache"
    except RuntimeError:  # no home folder (a container user without a passwd entry)
        base = Path(tempfile.gettempdir())
    return base / "crackkit" / CACHE_FILE


def measuring() -> bool:
    """False when ``CRACKKIT_AUTOTUNE=static`` asks for the fixed rules."""
    return not _FIXED and os.environ.get(MODE_ENV, "measure").strip().lower() != "static"


class SwitchCache:
    """The measured choices of this machine: ``{key: {"choice": name, "seconds": {...}}}``.

    The file is read once (again after :meth:`lock`), never trusted beyond its shape: an
    unreadable, oversized, too deeply nested or malformed file is ignored with a warning (and
    replaced on the next write); entries that are not a choice among strings and numbers are
    dropped.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else cache_path()
        self._entries: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is not None:
            return self._entries
        self._entries = {}
        try:
            if not self.path.is_file():
                return self._entries
            if self.path.stat().st_size > MAX_CACHE_BYTES:
                raise ValueError(f"larger than {MAX_CACHE_BYTES} bytes")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
                raise ValueError("not a crackkit speed-switch cache of this version")
            entries = data.get("entries", {})
            if not isinstance(entries, dict):
                raise ValueError("'entries' is not an object")
        except (OSError, ValueError, RecursionError) as exc:
            _log.warning(f"speed-switch cache {self.path} ignored ({exc}); measuring again")
            return self._entries
        for key, entry in entries.items():
            if _valid_entry(entry):
                self._entries[str(key)] = entry
        return self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        return self._load().get(key)

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_SECONDS) -> Iterator[bool]:
        """Hold the cache's lock file while measuring, so that processes starting together (a
        sweep's runs) measure one at a time, on an otherwise idle machine, and the later ones
        read the first one's choices: the entries are read again once the lock is held.

        Yields whether the lock was taken: after ``timeout`` seconds of waiting (or where no
        lock file can be made) the caller goes on without it.
        """
        handle = None
        taken = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path.with_name(self.path.name + ".lock"), "a+b")  # noqa: SIM115
        except OSError:
            handle = None
        if handle is not None and fcntl is not None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    taken = True
                    break
                except OSError as exc:
                    busy = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
                    if not busy or time.monotonic() >= deadline:
                        break  # no flock here (ENOLCK, ENOSYS), or waited long enough
                    time.sleep(0.1)
        self._entries = None  # what another process wrote meanwhile
        try:
            yield taken
        finally:
            if handle is not None:
                if taken:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()

    def put(self, key: str, entry: dict[str, Any]) -> None:
        entries = self._load()
        entries[key] = entry
        try:
            atomic_write_json(self.path, {"version": CACHE_VERSION, "entries": entries})
        except OSError as exc:  # a read-only home: the choice still holds for this process
            _log.warning(f"speed-switch cache {self.path} not written ({exc})")


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("choice"), str):
        return False
    seconds = entry.get("seconds", {})
    return isinstance(seconds, dict) and all(
        isinstance(k, str) and isinstance(v, int | float) for k, v in seconds.items()
    )


class MeasurementError(RuntimeError):
    """Every candidate of a switch failed: the caller keeps the fixed rule."""


@dataclass
class Choice:
    """One settled switch: the candidate taken, the seconds each took (best timed call), and
    whether it was ``measured`` now, read from the ``cached`` choice, or the ``static`` rule."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    source: str = "measured"

    def to_dict(self) -> dict[str, Any]:
        return {"choice": self.name, "seconds": self.seconds, "source": self.source}


def pick_fastest(
    key: str,
    candidates: Mapping[str, Callable[[], Any]],
    *,
    cache: SwitchCache | None = None,
    rounds: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    per_call: Mapping[str, float] | None = None,
) -> Choice:
    """The candidate whose call takes the least time; the cached choice for ``key`` if any.

    Each candidate is called once to warm up (kernels picked, memory allocated), then ``rounds``
    times in alternating order (A B, B A, ...); its time is the fastest timed call, divided by
    ``per_call[name]`` where given (e.g. images per call). Ties go to the first candidate.
    """
    if not candidates:
        raise ValueError("pick_fastest needs at least one candidate")
    names = list(candidates)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit["choice"] in candidates:
            return Choice(hit["choice"], dict(hit.get("seconds", {})), "cached")
    failed: dict[str, str] = {}

    def attempt(name: str) -> float:
        """One call's seconds; a candidate that raises (out of memory, say) is out."""
        t0 = clock()
        try:
            candidates[name]()
        except (RuntimeError, MemoryError) as exc:
            failed[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return float("inf")
        return clock() - t0

    for name in names:
        attempt(name)
    best = {name: float("inf") for name in names}
    for r in range(max(1, ROUNDS if rounds is None else rounds)):
        for name in names if r % 2 == 0 else reversed(names):
            if name not in failed:
                best[name] = min(best[name], attempt(name))
    if len(failed) == len(names):
        raise MeasurementError(f"every candidate failed: {failed}")
    for name, why in failed.items():
        _log.warning(f"speed switch {key.rsplit('|', 1)[-1]}: candidate {name} failed ({why})")
    scale = dict(per_call or {})
    seconds = {name: best[name] / scale.get(name, 1.0) for name in names if name not in failed}
    winner = min(seconds, key=lambda n: (seconds[n], names.index(n)))
    choice = Choice(winner, {n: round(s, 6) for n, s in seconds.items()}, "measured")
    if cache is not None:
        cache.put(key, {"choice": winner, "seconds": choice.seconds})
    return choice


# The resolutions made in this process, for the run's environment record.
_RESOLVED: dict[str, dict[str, Any]] = {}


def record_resolution(kind: str, record: dict[str, Any]) -> None:
    """Keep what one resolution settled (``kind``: ``training`` or ``inference``)."""
    _RESOLVED[kind] = record


def clear_resolutions() -> None:
    """Forget the resolutions so far (a run starts: record only its own)."""
    _RESOLVED.clear()


@contextlib.contextmanager
def fixed_rules() -> Iterator[None]:
    """Within the block, ``auto`` takes the fixed rules without measuring (a model loaded only
    to be handed back, not to run)."""
    global _FIXED
    previous, _FIXED = _FIXED, True
    try:
        yield
    finally:
        _FIXED = previous


_FIXED = False


def resolutions() -> dict[str, dict[str, Any]]:
    """The resolutions of this process so far (a copy)."""
    return json.loads(json.dumps(_RESOLVED))
