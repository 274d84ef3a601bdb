"""Speed switches settled by measurement: the faster path wins, the choice is cached per machine
and size, a damaged cache is ignored, fixed values are never measured, and measuring does not
touch the random state a seeded run draws from."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crackkit import autotune, runtime
from crackkit.autotune import SwitchCache, pick_fastest
from crackkit.config import RunConfig
from crackkit.fftconv import FFTConv2d

CPU = torch.device("cpu")


class FakeClock:
    """A clock that only moves when a fake path runs: each path advances it by its cost."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: dict[str, int] = {}

    def __call__(self) -> float:
        return self.now

    def path(self, name: str, seconds: float):
        def run() -> None:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.now += seconds

        return run


@pytest.mark.parametrize("order", [("slow", "fast"), ("fast", "slow")])
def test_the_faster_of_two_fake_paths_is_picked_and_cached(tmp_path, order):
    clock = FakeClock()
    costs = {"slow": 3.0, "fast": 1.0}
    paths = {name: clock.path(name, costs[name]) for name in order}
    cache = SwitchCache(tmp_path / "speed.json")
    choice = pick_fastest("machine|size|fft_conv", paths, cache=cache, clock=clock, rounds=2)
    assert choice.name == "fast"
    assert choice.source == "measured"
    assert choice.seconds == {"slow": 3.0, "fast": 1.0}
    assert clock.calls == {"slow": 3, "fast": 3}  # one warm-up + two timed calls each
    # A new process (a new cache object on the same file) reads the choice and runs nothing.
    again = pick_fastest(
        "machine|size|fft_conv", paths, cache=SwitchCache(tmp_path / "speed.json"), clock=clock
    )
    assert (again.name, again.source, again.seconds) == ("fast", "cached", choice.seconds)
    assert clock.calls == {"slow": 3, "fast": 3}
    stored = json.loads((tmp_path / "speed.json").read_text())
    assert stored["entries"]["machine|size|fft_conv"]["choice"] == "fast"
    # Another key (another size) is measured on its own.
    pick_fastest("machine|other|fft_conv", paths, cache=cache, clock=clock)
    assert clock.calls == {"slow": 6, "fast": 6}


def test_the_warm_up_call_is_not_timed_and_the_best_call_counts():
    """A path slow on its first call only (kernels being chosen) still wins when faster after."""
    clock = FakeClock()
    costs = {"a": [10.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}

    def path(name):
        def run():
            clock.now += costs[name].pop(0)

        return run

    choice = pick_fastest("k", {"a": path("a"), "b": path("b")}, clock=clock)
    assert choice.name == "a" and choice.seconds == {"a": 1.0, "b": 2.0}


def test_per_call_turns_seconds_per_call_into_seconds_per_image():
    """Batches of 4 in 3 s (0.75 s per image) beat batches of 1 in 1 s."""
    clock = FakeClock()
    paths = {"1": clock.path("1", 1.0), "4": clock.path("4", 3.0)}
    choice = pick_fastest("k", paths, clock=clock, per_call={"1": 1.0, "4": 4.0})
    assert choice.name == "4" and choice.seconds == {"1": 1.0, "4": 0.75}


def test_a_failing_candidate_is_out_and_all_failing_keeps_the_rule(caplog):
    """A candidate that raises (out of memory at batch 8, say) is not chosen and is named in a
    warning; when every one fails the caller is told, and keeps its fixed rule."""
    clock = FakeClock()

    def out_of_memory():
        raise RuntimeError("not enough memory")

    with caplog.at_level(logging.WARNING, logger="crackkit"):
        choice = pick_fastest(
            "m|eval_batch_size", {"8": out_of_memory, "4": clock.path("4", 2.0)}, clock=clock
        )
    assert choice.name == "4" and choice.seconds == {"4": 2.0}
    assert any("candidate 8 failed" in r.getMessage() for r in caplog.records)
    with pytest.raises(autotune.MeasurementError, match="every candidate failed"):
        pick_fastest("k", {"a": out_of_memory, "b": out_of_memory}, clock=clock)


def test_a_tie_goes_to_the_first_candidate():
    clock = FakeClock()
    paths = {"on": clock.path("on", 1.0), "off": clock.path("off", 1.0)}
    assert pick_fastest("k", paths, clock=clock).name == "on"


@pytest.mark.parametrize(
    "content",
    [
        b"not json {",
        b'{"version": 99, "entries": {}}',
        b'{"version": 1, "entries": []}',
        b"[1, 2, 3]",
        b" " * (autotune.MAX_CACHE_BYTES + 1),
        b"[" * 200_000,
    ],
    ids=["garbage", "other-version", "entries-not-object", "not-object", "oversized", "deep"],
)
def test_a_damaged_cache_is_ignored_with_one_warning_and_replaced(tmp_path, caplog, content):
    path = tmp_path / "speed.json"
    path.write_bytes(content)
    clock = FakeClock()
    paths = {"slow": clock.path("slow", 2.0), "fast": clock.path("fast", 1.0)}
    with caplog.at_level(logging.WARNING, logger="crackkit"):
        choice = pick_fastest("k", paths, cache=SwitchCache(path), clock=clock)
    assert choice.name == "fast" and choice.source == "measured"
    assert [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert json.loads(path.read_text())["entries"]["k"]["choice"] == "fast"


def test_malformed_entries_are_dropped_and_a_cached_name_must_be_a_candidate(tmp_path):
    path = tmp_path / "speed.json"
    entries = {
        "bad-choice": {"choice": 3},
        "bad-seconds": {"choice": "on", "seconds": {"on": "fast"}},
        "gone": {"choice": "removed-path", "seconds": {}},
        "good": {"choice": "off", "seconds": {"on": 2.0, "off": 1.0}},
    }
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    cache = SwitchCache(path)
    assert cache.get("bad-choice") is None and cache.get("bad-seconds") is None
    assert cache.get("good")["choice"] == "off"
    clock = FakeClock()
    paths = {"on": clock.path("on", 1.0), "off": clock.path("off", 2.0)}
    assert pick_fastest("gone", paths, cache=cache, clock=clock).source == "measured"
    assert pick_fastest("good", paths, cache=cache, clock=clock).name == "off"


def test_the_machine_key_names_the_cpu_and_its_bf16_instructions(monkeypatch):
    info = autotune.machine_fingerprint(CPU)
    assert {"cpu", "avx512_bf16", "amx_bf16", "torch", "threads"} <= set(info)
    key = autotune.machine_key(CPU)
    monkeypatch.setattr(autotune, "cpu_flags", lambda: {"avx512_bf16": True, "amx_bf16": True})
    amx_key = autotune.machine_key(CPU)
    monkeypatch.setattr(autotune, "cpu_flags", lambda: {"avx512_bf16": False, "amx_bf16": False})
    assert len({key, amx_key, autotune.machine_key(CPU)}) >= 2
    assert amx_key != autotune.machine_key(CPU)


def test_a_new_kernels_revision_measures_again(monkeypatch):
    """Choices cached under an older revision of crackkit's kernels are not reused."""
    key = autotune.machine_key(CPU)
    assert autotune.machine_fingerprint(CPU)["kernels"] == autotune.KERNELS_REVISION
    monkeypatch.setattr(autotune, "KERNELS_REVISION", autotune.KERNELS_REVISION + 1)
    assert autotune.machine_key(CPU) != key


TINY = {"input_height": 64, "input_width": 128, "batch_size": 2}


class StandIn(nn.Module):
    """A small network shaped like SegDecNet where the switches act: a 15x15 convolution of 64
    channels at 1/8 resolution that can run by FFT, (decision, segmentation) out."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3, padding=1)
        self.large = FFTConv2d(64, 8, 15, padding=7, bias=False)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        seg = self.head(self.large(F.avg_pool2d(self.stem(x), 8)))
        return seg.amax(dim=(1, 2, 3)), seg


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    monkeypatch.setenv("CRACKKIT_AUTOTUNE", "measure")
    monkeypatch.setenv("CRACKKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # bf16 is a candidate
    monkeypatch.setattr(autotune, "ROUNDS", 1)  # a real network: keep it short
    monkeypatch.setattr(autotune, "BATCH_CANDIDATES", (1, 2))
    return tmp_path / autotune.CACHE_FILE


@pytest.mark.parametrize("inference", [False, True])
def test_auto_switches_are_measured_once_then_read_from_the_cache(
    measuring, monkeypatch, inference
):
    monkeypatch.setattr(runtime, "build_model", lambda *args: StandIn())
    cfg = RunConfig(**TINY)
    state = torch.get_rng_state()
    first = runtime.resolve_switches(cfg, CPU, inference=inference)
    assert torch.equal(torch.get_rng_state(), state)  # a seeded run draws the same numbers
    names = {"amp", "channels_last", "fft_conv"} | ({"eval_batch_size"} if inference else set())
    switches = first.record["switches"]
    assert set(switches) == names
    assert {s["source"] for s in switches.values()} == {"measured"}
    assert all(s["seconds"] and min(s["seconds"].values()) > 0 for s in switches.values())
    if inference:
        assert first.eval_batch_size in autotune.BATCH_CANDIDATES
        assert set(switches["eval_batch_size"]["seconds"]) == {
            str(b) for b in autotune.BATCH_CANDIDATES
        }
    assert measuring.is_file()
    second = runtime.resolve_switches(cfg, CPU, inference=inference)
    assert {s["source"] for s in second.record["switches"].values()} == {"cached"}
    assert (second.amp_dtype, second.channels_last, second.fft_conv, second.eval_batch_size) == (
        first.amp_dtype,
        first.channels_last,
        first.fft_conv,
        first.eval_batch_size,
    )
    kind = "inference" if inference else "training"
    assert autotune.resolutions()[kind]["switches"] == json.loads(
        json.dumps(second.record["switches"])
    )


def test_fixed_values_are_never_measured(measuring):
    cfg = RunConfig(amp="off", channels_last="on", fft_conv="off", eval_batch_size=2, **TINY)
    switches = runtime.resolve_switches(cfg, CPU, inference=True)
    assert (switches.amp_dtype, switches.channels_last, switches.fft_conv) == (None, True, False)
    assert switches.eval_batch_size == 2
    assert {s["source"] for s in switches.record["switches"].values()} == {"fixed"}
    assert not measuring.exists()


def test_static_mode_takes_the_fixed_rules_without_measuring(measuring, monkeypatch):
    monkeypatch.setenv("CRACKKIT_AUTOTUNE", "static")
    cfg = RunConfig(**TINY)
    switches = runtime.resolve_switches(cfg, CPU, inference=True)
    assert switches.amp_dtype == torch.bfloat16  # the rule: bf16 on a CPU with bf16
    assert switches.fft_conv is True and switches.channels_last is False  # 64x128: contiguous
    assert switches.eval_batch_size == runtime.STATIC_EVAL_BATCH
    assert {s["source"] for s in switches.record["switches"].values()} == {"static"}
    assert not measuring.exists()


def test_fixed_rules_block_measures_nothing(measuring):
    with autotune.fixed_rules():
        switches = runtime.resolve_switches(RunConfig(**TINY), CPU)
    assert {s["source"] for s in switches.record["switches"].values()} == {"static"}
    assert autotune.measuring() and not measuring.exists()


def test_a_spent_budget_leaves_the_fixed_rule(measuring, monkeypatch):
    monkeypatch.setattr(autotune, "BUDGET_SECONDS", -1.0)
    switches = runtime.resolve_switches(RunConfig(**TINY), CPU)
    assert {s["source"] for s in switches.record["switches"].values()} == {"static"}


def test_model_for_builds_the_model_with_the_measured_switches(measuring, monkeypatch):
    monkeypatch.setattr(runtime, "build_model", lambda *args: StandIn())
    cfg = RunConfig(eval_batch_size="auto", **TINY)
    assert cfg.eval_batch_size == 0
    model, placement = runtime.model_for(cfg, CPU, inference=True)
    record = autotune.resolutions()["inference"]["switches"]
    assert placement.eval_batch_size == record["eval_batch_size"]["choice"]
    assert placement.channels_last == record["channels_last"]["choice"]
    assert (placement.amp_dtype == torch.bfloat16) == (record["amp"]["choice"] == "bf16")
    fft = [m.fft for m in model.modules() if hasattr(m, "fft")]
    assert fft == [record["fft_conv"]["choice"]]


@pytest.mark.skipif(autotune.fcntl is None, reason="no file locks here (Windows)")
def test_one_process_measures_at_a_time_and_the_next_reads_its_choices(tmp_path):
    """A second process (here a second cache object) waits for the lock; once it holds it, it
    reads what the first one wrote meanwhile instead of measuring again."""
    path = tmp_path / "speed.json"
    first, second = SwitchCache(path), SwitchCache(path)
    assert second.get("k") is None  # read before the first one measured
    with first.lock() as taken:
        assert taken
        started = time.monotonic()
        with second.lock(timeout=0.3) as waited:
            assert not waited and time.monotonic() - started >= 0.3
        first.put("k", {"choice": "on", "seconds": {"on": 1.0, "off": 2.0}})
    with second.lock() as taken:
        assert taken
        assert second.get("k")["choice"] == "on"
