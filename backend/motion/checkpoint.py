"""Model folders: `model.safetensors` (weights) + `config.json` (architecture, normalisation, training record)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from backend.motion.model import Denoiser, DenoiserConfig
from backend.motion.representation import Normalizer

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ME = REPO / "weights" / "me"
SHIPPED_BASELINE = REPO / "weights" / "baseline"
# the shipped style model: the default model fine-tuned with a style condition, used when a style is asked for
# (weights/me_styles/README.md says why it is not the default)
SHIPPED_ME_STYLES = REPO / "weights" / "me_styles"


def model_for(style: str | None, model_dir: Path | None = None) -> Path | None:
    """The model folder for a request: the user's folder if given, else the shipped style model for an asked style
    (None: the shipped default)."""
    from backend.motion.conditioning import STYLES, style_index

    if model_dir is not None or style_index(style, len(STYLES)) == 0:
        return model_dir
    return SHIPPED_ME_STYLES


class ModelFolderError(FileNotFoundError):
    """A model folder is missing or incomplete."""


def save_model(folder: Path, model: Denoiser, normalizer: Normalizer, record: dict | None = None,
               half: bool = False) -> Path:
    """Write weights and config atomically enough: files appear only when complete.

    `half` stores float16 weights (half the size, for shipping); loading casts them back to float32.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = folder / "model.safetensors.part"
    save_file(state, str(tmp))
    tmp.replace(folder / "model.safetensors")
    cfg = {"denoiser": model.cfg.to_dict(), "normalizer": normalizer.to_dict(), "record": record or {}}
    (folder / "config.json.part").write_text(json.dumps(cfg, indent=1))
    (folder / "config.json.part").replace(folder / "config.json")
    return folder


def load_model(folder: Path, device: str = "cpu") -> tuple[Denoiser, Normalizer, dict]:
    """Load a model folder written by `save_model` (eval mode)."""
    folder = Path(folder)
    weights, config = folder / "model.safetensors", folder / "config.json"
    if not weights.is_file() or not config.is_file():
        raise ModelFolderError(f"{folder}: not a model folder (needs model.safetensors and config.json)")
    try:
        cfg = json.loads(config.read_text())
        model = Denoiser(DenoiserConfig(**cfg["denoiser"]))
        normalizer = Normalizer.from_dict(cfg["normalizer"])
        state = load_file(str(weights), device=device)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise ModelFolderError(f"{folder}: weights do not match the config or the files are damaged "
                               f"({first[-1].strip() if first else type(exc).__name__})") from None
    model.to(device).eval()
    return model, normalizer, cfg.get("record", {})


def torch_threads() -> None:
    """Use every core for inference on the CPU (torch defaults can be lower inside some launchers)."""
    import os

    torch.set_num_threads(max(1, os.cpu_count() or 1))


def export_from_run(run: Path, out: Path, which: str = "ema", state_path: Path | None = None,
                    half: bool = False) -> Path:
    """Write a model folder from a training run's state (`which`: 'ema' or 'model', the raw weights).

    `state_path` picks a saved snapshot of the state instead of the run's latest one.
    """
    run = Path(run)
    cfg = json.loads((run / "ema" / "config.json").read_text())
    state = torch.load(state_path or run / "state.pt", map_location="cpu", weights_only=True)
    if which not in ("ema", "model"):
        raise ValueError(f"which must be 'ema' or 'model', got {which!r}")
    model = Denoiser(DenoiserConfig(**cfg["denoiser"]))
    model.load_state_dict(state[which])
    record = {**cfg.get("record", {}), "steps": int(state["step"]), "weights": which}
    return save_model(Path(out), model.eval(), Normalizer.from_dict(cfg["normalizer"]), record, half=half)
