"""``ctmevo train``'s callbacks beyond MLflow: progress lines for logs, the model card, and a fan-out.

They implement :class:`ctm.train.TrainCallback`'s hooks by duck typing (``on_start``, ``on_log``, ``on_eval``,
``on_checkpoint``, ``on_end``), so nothing here imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CardWriter", "FanOut", "ProgressLines"]


class FanOut:
    """Calls each hook of every callback in turn (in the order given)."""

    def __init__(self, *callbacks: Any) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any, **kwargs: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)

        return call


class ProgressLines:
    """One line per validation and at most one per ``every_s`` seconds of training, for logs (no terminal):
    ``step 2000/10000 (20%)  loss 0.4312  lr 9.8e-04  val 0.812  1m40s, ~6m40s left``."""

    def __init__(self, *, every_s: float = 30.0, say: Callable[[str], None] | None = None) -> None:
        self.every_s, self.say = every_s, say or (lambda text: print(text, flush=True))
        self._t0 = self._last = 0.0
        self._total = self._start = 0
        self._loss = self._lr = float("nan")
        self._val: float | None = None

    def on_start(self, info: dict[str, Any]) -> None:
        self._t0 = self._last = time.monotonic()
        self._total, self._start = int(info["config"].steps), int(info["start_step"])
        resumed = f", resuming at step {self._start}" if self._start else ""
        self.say(f"training {info['genome_hash']} on {info['task'].name} for {self._total} steps "
                 f"({info['parameters']:,} parameters, device {info['config'].device}{resumed})")

    def _line(self, step: int) -> str:
        elapsed = time.monotonic() - self._t0
        done = step - self._start
        left = elapsed / done * (self._total - step) if done > 0 else float("nan")
        val = "" if self._val is None else f"  val {self._val:.3f}"
        return (f"step {step}/{self._total} ({100 * step / max(1, self._total):.0f}%)  loss {self._loss:.4f}  "
                f"lr {self._lr:.1e}{val}  {_clock(elapsed)}" + (f", ~{_clock(left)} left" if left == left else ""))

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self._loss, self._lr = metrics.get("train_loss", self._loss), metrics.get("lr", self._lr)
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self.say(self._line(step))

    def on_eval(self, step: int, metrics: dict[str, float], per_tick_accuracy: list[float]) -> None:
        self._val = metrics.get("val_accuracy")
        self._last = time.monotonic()
        self.say(self._line(step))

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_end(self, result: Any, status: str) -> None:
        self.say(f"training {status} at step {result.steps} after {_clock(time.monotonic() - self._t0)}")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class CardWriter:
    """Writes ``MODEL_CARD.md`` into the trained bundle when training finishes (before the MLflow logger, which
    comes after it in a :class:`FanOut`, uploads the bundle); ``logger`` gives the training's run id."""

    def __init__(self, *, source: dict[str, Any], logger: Any = None) -> None:
        self.source, self.logger = source, logger
        self._info: dict[str, Any] = {}

    def on_start(self, info: dict[str, Any]) -> None:
        self._info = info

    def on_log(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_eval(self, step: int, metrics: dict[str, float], per_tick_accuracy: list[float]) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_end(self, result: Any, status: str) -> None:
        if status != "finished" or result.bundle is None:
            return
        from ctm.bundle import CARD_FILE, read_manifest
        from genome.io import write_bytes_atomic
        from search.export.train_card import trained_card

        logger = self.logger
        card = trained_card(bundle=Path(result.bundle), genome=self._info["genome"],
                            task=self._info["task"].to_dict(), config=self._info["config"].to_dict(),
                            steps=result.steps, final=result.final, manifest=read_manifest(result.bundle),
                            source=self.source, run_id=getattr(logger, "run_id", None),
                            tracking_uri=getattr(logger, "uri", None),
                            experiment_id=getattr(logger, "experiment_id", None))
        write_bytes_atomic(Path(result.bundle) / CARD_FILE, card.encode())
