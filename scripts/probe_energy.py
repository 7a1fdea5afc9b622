#!/usr/bin/env python
"""Where does the Motion Expert lose a dance's energy? A diagnostic for Div_k's shortfall (not a test).

For windows of real dances (by default the held-out cha-cha and rumba songs, whose arm styling carries most of the
real test dances' vertical kinetic energy, and the same styles' train songs for comparison), it prints the energy of
the network's clean estimates relative to the real windows':
- one step from the real window noised to step t (can the network keep the energy when the dance is given?);
- every DDIM step of sampling from noise on the same music (does sampling find it on its own?).
Energies are mean squared joint velocities (m/s)^2, joints low-passed at 6 Hz so the network's frame-to-frame shake
does not count as motion: the hands' vertical and horizontal ones and the vertical one over all joints (Div_k's
KE_v). Raw network, no guidance terms or clean-ups.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import DanceDataset  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME, load_model  # noqa: E402
from backend.motion.representation import features_to_motion  # noqa: E402
from backend.motion.sampling import DEFAULT_BETA, ddim_timesteps  # noqa: E402
from backend.motion.schedule import Schedule  # noqa: E402
from backend.motion.smoothing import low_pass  # noqa: E402
from backend.motion.windows import WindowSampler  # noqa: E402

HANDS = [20, 21, 22, 23]  # wrists and hands
HELD_OUT = "DANCE_C_4,DANCE_R_8,DANCE_C_8,DANCE_R_9"  # the val and test cha-cha and rumba songs
TRAIN_LATIN = "DANCE_C_2,DANCE_C_7,DANCE_R_2,DANCE_R_4,DANCE_R_5,DANCE_R_7"


def energies(x: torch.Tensor, normalizer) -> np.ndarray:
    """(B, W, 151) normalised windows -> (3,) mean energies: hands vertical, hands horizontal, all joints vertical."""
    out = []
    for window in x.detach().cpu().numpy():
        j = features_to_motion(normalizer.denorm_motion(window)).joint_positions()
        flat = torch.as_tensor(j.reshape(len(j), -1), dtype=torch.float64)[None]
        j = low_pass(flat, 6.0, 30.0)[0].numpy().reshape(j.shape)
        v = np.diff(j, axis=0) * 30.0
        out.append([(v[:, HANDS, 1] ** 2).mean(), (v[:, HANDS][..., [0, 2]] ** 2).sum(-1).mean(),
                    (v[..., 1] ** 2).mean()])
    return np.mean(out, axis=0)


def probe(model, normalizer, clips, window: int, batch: int, steps: int, beta: float, seed: int,
          eta: float = 0.0) -> list[tuple]:
    """Rows (label, ratios to the real windows' energies) for one set of clips."""
    sampler = WindowSampler(clips, window, normalizer, model.cfg.rhythm, None, styles=model.cfg.n_styles > 0)
    motion, music, style = sampler.draw(np.random.default_rng(seed), batch)
    x0, music, style = torch.tensor(motion), torch.tensor(music), torch.tensor(style)
    real = energies(x0, normalizer)
    schedule, gen = Schedule(), torch.Generator().manual_seed(seed + 1)
    b = torch.full((batch,), beta)
    rows = []
    with torch.no_grad():
        enc = model.encode_music(music, None, style)
        for t in (50, 200, 400, 600, 800, schedule.steps - 1):
            tt = torch.full((batch,), t, dtype=torch.long)
            xt = schedule.q_sample(x0, tt, torch.randn(x0.shape, generator=gen))
            rows.append((f"one step from the real window at t={t}", energies(model(xt, tt, b, enc, style),
                                                                            normalizer) / real))
        ts = ddim_timesteps(schedule.steps, steps)
        x = torch.randn(x0.shape, generator=gen)
        for i, t in enumerate(ts):
            now = torch.full((batch,), t, dtype=torch.long)
            nxt = torch.full((batch,), ts[i + 1] if i + 1 < len(ts) else -1, dtype=torch.long)
            ab, ab_prev = schedule.ab(now)[:, None, None], schedule.ab(nxt)[:, None, None]
            x0_hat = model(x, now, b, enc, style)
            rows.append((f"from noise, DDIM step {i + 1}/{len(ts)} (t={t})", energies(x0_hat, normalizer) / real))
            eps = (x - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
            noise = torch.randn(x.shape, generator=gen)
            x = ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * noise
    return [("real windows ((m/s)^2)", real)] + rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--clips", default=HELD_OUT, help="comma-separated dance names (held-out Latin songs)")
    ap.add_argument("--compare", default=TRAIN_LATIN, help="a second set, e.g. train songs of the same styles ('' off)")
    ap.add_argument("--window", type=int, default=150, help="frames per window (the training window)")
    ap.add_argument("--batch", type=int, default=32, help="windows per set")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--beta", type=float, default=DEFAULT_BETA)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic, as the product samples)")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"skipped: the shared data folder {args.data} is not there")
    torch.set_num_threads(1)
    model, normalizer, _ = load_model(args.me)
    ds = DanceDataset(args.data)
    from rich.console import Console
    from rich.table import Table

    for names in filter(None, (args.clips, args.compare)):
        wanted = set(names.split(","))
        clips = [c for c in ds.clips if c.name in wanted]
        missing = wanted - {c.name for c in clips}
        if missing:
            sys.exit(f"error: no such dances in {args.data}: {', '.join(sorted(missing))}")
        table = Table(title=f"{args.me}: clean estimates' energy / the real windows' ({names})")
        for col in ("", "hands vertical", "hands horizontal", "all joints vertical"):
            table.add_column(col, justify="right")
        for label, values in probe(model, normalizer, clips, args.window, args.batch, args.steps, args.beta,
                                   args.seed, args.eta):
            table.add_row(label, *(f"{v:.3f}" if label.startswith("real") else f"{v:.2f}" for v in values))
        Console(width=140).print(table)


if __name__ == "__main__":
    main()
