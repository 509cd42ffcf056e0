"""The one progress facility: off a terminal, a line at most every INTERVAL seconds with the
fraction done and the time left, and a line when done; rank 0 only; SAELens' own bar goes
through it while an SAE trains."""

from __future__ import annotations

import sys
import types

import pytest

from activations import progress as P
from activations.progress import log, progress


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(P, "clock", c)
    monkeypatch.setattr(P, "INTERVAL", 30.0)
    monkeypatch.delenv("RANK", raising=False)
    return c


def lines(capsys) -> list[str]:
    """The progress lines: on stderr (where tqdm's bar would be), none on stdout, no bar."""
    out, err = capsys.readouterr()
    assert "\r" not in out + err and out == ""  # stdout stays a command's result
    return err.splitlines()


def logged(capsys) -> list[str]:
    """The log lines: on stdout (the run's story), none on stderr."""
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def test_off_a_terminal_a_line_at_most_every_interval_with_time_left_and_a_done_line(clock, capsys):
    bar = progress(total=1000, desc="work")
    assert isinstance(bar, P.Lines)  # capsys' stderr is no terminal
    for _ in range(10):  # 100 items every 10 s
        clock.t += 10
        bar.update(100)
        if bar.n == 500:
            bar.set_postfix(loss="0.12", ev="0.9", refresh=False)
    bar.close()
    bar.close()  # once only
    assert lines(capsys) == ["work: 30% (300/1000), 1m10s left",
                             "work: 60% (600/1000), 40s left, loss=0.12, ev=0.9",
                             "work: 90% (900/1000), 10s left, loss=0.12, ev=0.9",
                             "work: done 1000/1000 in 1m40s"]


def test_updates_faster_than_the_interval_print_nothing_until_done(clock, capsys):
    for _ in progress(range(200), desc="fast"):
        clock.t += 0.1  # 20 s in all
    assert lines(capsys) == ["fast: done 200/200 in 20s"]


def test_a_slow_iteration_and_a_resumed_count(clock, capsys):
    # tqdm's `initial` (SAELens passes the samples already trained when resuming): the rate
    # and the time left count only what this run did.
    bar = progress(total=100, desc="resumed", initial=50)
    clock.t += 3600
    bar.update(25)
    with progress([1, 2], desc="slow") as it:
        for _ in it:
            clock.t += 31
    assert lines(capsys) == ["resumed: 75% (75/100), 1h00m left",
                             "slow: 50% (1/2), 31s left", "slow: done 2/2 in 1m02s"]


def test_no_total_and_an_error(clock, capsys):
    bar = progress(iter("abc"), desc="stream")
    for _ in bar:
        clock.t += 40
    with pytest.raises(RuntimeError):
        with progress(total=10, desc="broken") as b:
            clock.t += 40
            b.update(1)
            raise RuntimeError("boom")
    # an error closes the bar without a done line: the error is what the log says next
    assert lines(capsys) == ["stream: 1 done in 40s", "stream: 2 done in 1m20s", "stream: 3 done in 2m00s",
                             "stream: done 3 in 2m00s", "broken: 10% (1/10), 6m00s left"]


def test_only_rank_0_prints(clock, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    bar = progress(range(3), desc="other rank")
    assert list(bar) == [0, 1, 2]
    clock.t += 100
    bar.update(1)
    log("a stage line")
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    log("a stage line")
    assert logged(capsys) == ["a stage line"]
    # an initialised process group wins over the environment
    fake = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda: 3)
    monkeypatch.setitem(sys.modules, "torch.distributed", fake)
    assert P.rank() == 3
    log("rank 3 says nothing")
    assert capsys.readouterr() == ("", "")


def test_disable_and_a_terminal(clock, capsys, monkeypatch):
    assert list(progress(range(2), desc="off", disable=True)) == [0, 1]
    assert capsys.readouterr() == ("", "")
    monkeypatch.setattr(P, "_on_terminal", lambda: True)
    from tqdm.auto import tqdm

    bar = progress(range(2), desc="bar", leave=False)
    assert isinstance(bar, tqdm)
    bar.close()


def test_saelens_bar_prints_throttled_lines_while_an_sae_trains(clock, capsys, monkeypatch, tmp_path):
    from sae_lens.training import activation_scaler, sae_trainer

    from sae.synthetic import HOOK, synthetic_model, write_synthetic_cache
    from sae.train import SAETrainConfig, train_sae

    write_synthetic_cache(synthetic_model(32, 16), tmp_path / "c", rows=2048, seq_len=64)
    capsys.readouterr()
    original = sae_trainer.tqdm
    ticks = iter(range(10**6))
    monkeypatch.setattr(P, "clock", lambda: 1000.0 + 20 * next(ticks))  # 20 s per look at the clock
    train_sae(tmp_path / "c", HOOK, SAETrainConfig(steps=40, batch_size=64, buffer_rows=512, norm_batches=2, k=2,
                                                   expansion=2, checkpoints=0), tmp_path / "sae")
    out = lines(capsys)
    training = [line for line in out if line.startswith("Training SAE: ")]
    assert training[-1] == "Training SAE: done 2560/2560 in " + training[-1].rsplit(" ", 1)[1]
    steps = training[:-1]  # throttled: each one at least 30 s (two looks) after the one before
    assert steps and all(" left" in line and "% (" in line and "/2560)" in line and "loss=" in line for line in steps)
    assert len(steps) <= 40 // 2
    assert any(line.startswith("Estimating norm scaling factor: done 2/2") for line in out)
    assert sae_trainer.tqdm is original and activation_scaler.tqdm is not progress  # restored afterwards
