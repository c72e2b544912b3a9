"""The training loop every family shares: device, AMP, seeding, progress, checkpoints, resume,
early stopping, a loss-curve PNG and a metrics JSON in the run folder.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from improvd.evaluation.data import split_by_piece  # noqa: F401  (the families import it from here)
from improvd.training.config import TrainConfig


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from improvd import ImprovdError
        raise ImprovdError("--device cuda asked for, but torch sees no CUDA GPU: use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def update(opt: torch.optim.Optimizer, loss: torch.Tensor, params=None, clip: float = 0.0) -> None:
    """One optimiser step on ``loss``: the gradient norm clipped to ``clip`` first when given."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


# numpy arrays, as the numpy RNG state was saved before checkpoints held plain values only: a
# restricted set (an array of a dtype, filled from bytes), so runs trained then still load.
_OLD_NUMPY = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
              getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct]


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint read as data only (torch's weights_only unpickler): tensors, dicts, lists,
    strings and numbers. A pickle can run any code while it loads, and a run folder is the kind
    of thing people download; one that needs more than data is refused, never run."""
    import pickle

    from improvd import ImprovdError

    path = Path(path)
    try:
        with torch.serialization.safe_globals(_OLD_NUMPY):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            foreign = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            foreign = []
        if foreign:
            raise ImprovdError(f"checkpoint {path} needs code to load ({', '.join(foreign[:3])}), not only data: refused; "
                               "retrain it, or re-save its state dict as tensors if you trust where it came from") from None
        raise ImprovdError(f"checkpoint {path} is not a readable torch checkpoint: retrain, or point at a run folder's best.pt / last.pt") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ImprovdError(f"checkpoint {path} cannot be read ({str(e).splitlines()[0][:120]}): retrain or copy it again") from None


def numpy_rng_state() -> list:
    """np.random's state as plain values (a tensor of keys), so a checkpoint stays data only."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def set_numpy_rng_state(state) -> None:
    name, keys, pos, has_gauss, cached = state
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), int(pos), int(has_gauss), float(cached)))


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def save_checkpoint(self, state: dict, best: bool) -> None:
        tmp = self.path / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.path / "last.pt")
        if best:
            torch.save(state, self.path / "best.pt.tmp")
            (self.path / "best.pt.tmp").replace(self.path / "best.pt")

    def load(self, which: str = "last") -> dict | None:
        p = self.path / f"{which}.pt"
        return load_checkpoint(p) if p.exists() else None

    def write_json(self, name: str, data: dict) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    def plot_losses(self, history: list[dict], ylabel: str = "loss") -> Path | None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ep = [h["epoch"] for h in history]
        ax.plot(ep, [h["train_loss"] for h in history], label="train")
        if any("valid_loss" in h for h in history):
            ax.plot(ep, [h.get("valid_loss", math.nan) for h in history], label="valid")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = self.path / "loss.png"
        fig.savefig(out)
        plt.close(fig)
        return out


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig, run: RunDir,
        epochs: int, batches: Callable[[int], Iterable], train_step: Callable[[object], float],
        evaluate: Callable[[], dict], device: torch.device, scheduler=None,
        describe: dict | None = None, loss_label: str = "loss") -> dict:
    """Epoch loop. ``batches(epoch)`` yields batches; ``train_step`` returns the batch loss;
    ``evaluate`` returns a dict with ``valid_loss`` (lower is better) for early stopping."""
    from improvd.progress import stage

    history: list[dict] = []
    start_epoch, best, stale = 0, math.inf, 0
    if cfg.resume:
        state = run.load("last")
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler"):
                scheduler.load_state_dict(state["scheduler"])
            history, best, stale = state["history"], state["best"], state.get("stale", 0)
            start_epoch = state["epoch"] + 1
            torch.set_rng_state(state["torch_rng"])
            set_numpy_rng_state(state["numpy_rng"])
            random.setstate(state["py_rng"])
            print(f"resuming {run.path} at epoch {start_epoch}")
    t_start = time.time()
    with stage(f"training {cfg.family}/{cfg.preset}", total=epochs, unit="epochs", completed=start_epoch) as progress:
        for epoch in range(start_epoch, epochs):
            model.train()
            t0 = time.time()
            losses = []
            for batch in batches(epoch):
                losses.append(train_step(batch))
                progress.update(info=f"epoch {epoch + 1} loss {losses[-1]:.4f}")
            if scheduler is not None:
                scheduler.step()
            model.eval()
            with torch.no_grad():
                metrics = evaluate()
            row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else math.nan,
                   "seconds": round(time.time() - t0, 3), **{k: float(v) for k, v in metrics.items()}}
            history.append(row)
            vl = row.get("valid_loss", row["train_loss"])
            improved = vl < best - 1e-5
            if improved:
                best, stale = vl, 0
            else:
                stale += 1
            run.save_checkpoint({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "history": history, "best": best, "stale": stale,
                "config": asdict(cfg), "describe": describe or {},
                "torch_rng": torch.get_rng_state(), "numpy_rng": numpy_rng_state(), "py_rng": random.getstate(),
            }, best=improved)
            progress.advance(info=f"train {row['train_loss']:.4f} valid {vl:.4f}")
            if not progress.live:  # a log gets every epoch's figures, on stderr with the other progress lines
                progress.log(f"epoch {epoch + 1}/{epochs} train {row['train_loss']:.4f} " +
                             " ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f" ({row['seconds']:.1f}s)")
            if cfg.patience and stale >= cfg.patience:
                print(f"early stop at epoch {epoch + 1}: valid loss has not improved for {stale} epochs")
                break
    wall = time.time() - t_start
    done = len(history) - 0
    summary = {
        "family": cfg.family, "preset": cfg.preset, "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "epochs_run": done, "best_valid_loss": best, "wall_seconds": round(wall, 2),
        "epochs_per_second": round((len(history) - start_epoch) / wall, 4) if wall > 0 else None,
        "history": history, "config": asdict(cfg), **(describe or {}),
    }
    run.write_json("metrics.json", summary)
    run.plot_losses(history, loss_label)
    return summary

