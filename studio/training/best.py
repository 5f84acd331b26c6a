"""The best checkpoint: the trained weights at the lowest validation loss, kept and used for Chat and Export, and
early stopping once the validation loss has stopped improving (the U-shape of over-training).

Why not Trainer's `load_best_model_at_end`: it saves a full checkpoint (optimizer state included) at every
evaluation and needs the save interval to be a multiple of the evaluation interval, so it would take over the
user's "Save every" (what Resume loses after a crash). Here only the trained weights are kept, in the run folder
(`best/`), at each new best: for LoRA a few MB. The record survives a resume. Under sharded training (FSDP,
ZeRO-3) a process holds only shards, so the run keeps its last weights and says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.text import Msg


class BestKeeper:
    """Tracks the lowest validation loss and its trained weights; counts evaluations without a gain of at least
    `threshold` (Trainer's EarlyStoppingCallback has the same rule)."""

    def __init__(self, folder: Path, patience: int, threshold: float = 0.0):
        self.folder, self.patience, self.threshold = Path(folder), patience, threshold
        record = self.record()
        self.best_loss = record["eval_loss"] if record else None
        self.best_step = record["step"] if record else None
        self.without_improvement = 0

    @property
    def record_file(self) -> Path:
        return self.folder / "best.json"

    @property
    def weights_file(self) -> Path:
        return self.folder / "trainable.safetensors"

    def record(self) -> dict | None:
        try:
            return json.loads(self.record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def seen(self, step: int, loss: float, model, main: bool = True) -> bool:
        """One evaluation: a new best saves the trained weights (main process) and returns True."""
        if step == 0:  # the base model's baseline: nothing trained to keep
            return False
        # Patience counts measurements without a gain of at least `threshold`: once the validation answers are
        # near-certain (topic labels reach 0.002 nats/token) further steps only memorise, yet the lowest loss
        # is still the one kept.
        significant = self.best_loss is None or loss < self.best_loss - self.threshold
        self.without_improvement = 0 if significant else self.without_improvement + 1
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss, self.best_step = loss, step
            if main:
                self._save(model, step, loss)
            return True
        return False

    def should_stop(self) -> bool:
        return self.stop_reason() is not None

    def stop_reason(self) -> str | None:
        """'patience': that many measurements without a gain; 'converged': the best loss is under the threshold,
        so no later measurement can gain that much (a loss is never negative) and waiting out the patience would
        only train on (a third of a short run went so); None: go on."""
        if self.patience <= 0:
            return None
        if self.without_improvement >= self.patience:
            return "patience"
        if self.threshold > 0 and self.best_loss is not None and self.best_loss < self.threshold:
            return "converged"
        return None

    def _save(self, model, step: int, loss: float) -> None:
        from safetensors.torch import save_file  # deferred: torch

        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: p.detach().to("cpu").contiguous().clone() for name, p in model.named_parameters()
                   if p.requires_grad}
        tmp = self.weights_file.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(self.weights_file)  # written whole, then named: a crash never leaves half the weights
        record_tmp = self.record_file.with_suffix(".tmp")
        record_tmp.write_text(json.dumps({"step": step, "eval_loss": loss}), encoding="utf-8")
        record_tmp.replace(self.record_file)

    def restore(self, model, last_step: int) -> dict | None:
        """Put the best weights back into `model` when the best step is not the last; the record, or None."""
        record = self.record()
        if record is None or not self.weights_file.exists():
            return None
        if record["step"] != last_step:
            from safetensors.torch import load_file  # deferred: torch

            saved = load_file(str(self.weights_file))
            params = dict(model.named_parameters())
            for name, tensor in saved.items():
                if name in params:
                    params[name].data.copy_(tensor.to(params[name].device, params[name].dtype))
        return record


def keeper_callback(keeper: BestKeeper, model_of, log, main: bool):
    """A TrainerCallback feeding each evaluation's loss to `keeper` and stopping the run when it says so."""
    from transformers import TrainerCallback  # deferred: heavy

    class KeepBest(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            if loss is None or not state.global_step:
                return control
            keeper.seen(state.global_step, float(loss), model_of(), main)
            if (reason := keeper.stop_reason()) is not None:
                key = "log.early_stop" if reason == "patience" else "log.early_stop_converged"
                log(Msg(key, step=state.global_step, patience=keeper.patience, best=keeper.best_step,
                        loss=keeper.best_loss, threshold=keeper.threshold))
                control.should_training_stop = True
                control.should_save = True  # a checkpoint to resume from, as Stop leaves one
            return control

    return KeepBest()


def kept_message(figures: dict, settings, stopped_early: str | None) -> Msg:
    """Which checkpoint the run keeps, and why (the lowest validation loss; stopped early (`BestKeeper.stop_reason`),
    by hand, or at its end)."""
    if stopped_early == "converged":
        why = Msg("log.stopped_converged", threshold=settings.training.early_stopping_threshold)
    elif stopped_early:
        why = Msg("log.stopped_early", patience=settings.training.early_stopping_patience)
    elif figures["global_step"] < figures.get("planned_steps", figures["global_step"]):
        why = Msg("log.stopped_by_hand")
    else:
        why = Msg("log.ran_to_end")
    return Msg("log.kept_best", step=figures["best_step"], loss=figures["best_eval_loss"], last=figures["global_step"],
               why=why)
