"""DDIM sampling with masked denoising: one mechanism for generation, inpainting, joint edits and root paths.

At every step the known parts of the motion (a mask over frames x channels) are replaced by the known values noised
to the current step (EDGE's inpainting), and at the end by the known values themselves, so kept parts come back
exactly. One model call per step: with guidance-free training, beta sets the guidance strength inside that call.

Replacement alone lets the model ignore a lone kept frame until the last steps (it is one noisy frame among many), so
the free frames beside it arrive somewhere else and the clean-up has to bend them in. With `reconstruct` > 0 an edit
also uses reconstruction guidance (Ho et al. 2022, "Video Diffusion Models", eq. 7): the gradient of the model's
error on the kept parts, taken through the model, pulls its prediction of the free frames towards motion that
actually reaches the kept ones. It costs a backward pass per step, so only edits pay it. Lone kept frames (keyframes,
runs of at most LONE_RUN frames) pull LONE_GAIN times harder: a long kept run is already strong context for the
model, and the weight that makes a keyframe's neighbours arrive at it roughens the seams of a long run (measured with
scripts/eval_edits.py; see README). Near a keyframe the guidance's correction is blurred over a few frames: raw, it
lands on the keyframe's own free channels (a pelvis kicked 60 degrees for one frame when only the arms are keyed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from backend.cpu_threads import adapt as adapt_threads
from backend.motion.beat_guidance import DEFAULT_BEAT_GUIDANCE
from backend.motion.conditioning import style_index
from backend.motion.diffusion import Schedule
from backend.motion.model import Denoiser
from backend.motion.pelvis_flips import PELVIS, repairs_at
from backend.motion.precision import network_pass, sampler_dtype
from backend.motion.seams import SEAM_WINDOW
from backend.motion.smoothing import gaussian_kernel, low_pass, smooth_in_time
from backend.motion.speed_limit import SPEED_CAP
from backend.motion.representation import CONTACTS, ROOT
from backend.music.features import FPS
from bridge.request import GENERATION_STEPS, check_value, default_of, spec_of

ROOT_XZ = [ROOT.start, ROOT.start + 2]
# The product defaults (beta, steps, style guidance) live with their measurements in bridge.request.DanceRequest.
DEFAULT_BETA = default_of("beta")
DEFAULT_RECONSTRUCT = 4.0
# A song implies its style, and a style condition trained beside it is easily outvoted: asked for a style, the sampler
# also runs the model with style "auto" and steps away from it, x0 = f(style) + w (f(style) - f(auto)), a second pass
# per step only when a style is asked for.
DEFAULT_STYLE_GUIDANCE = default_of("style_guidance")
LONE_RUN, LONE_GAIN = 5, 4.0


class Cancelled(Exception):
    """Raised when the step callback asks to stop."""


DEFAULT_CUTOFF = 6.0  # Hz; see SampleOptions.cutoff
DEFAULT_STEPS = GENERATION_STEPS  # the sampler's DDIM steps unless told (a request may leave the count to the pipeline)


@dataclass
class SampleOptions:
    """How to sample: DDIM steps, diversity beta (1 = unguided; smaller = stronger guidance), seed, DDIM eta."""

    # 12 DDIM steps score as well as 20 on the test songs (FID_k 98.6 vs 102.9, BAS 0.340 vs 0.331, PFC 1.64 vs
    # 1.56; scripts/eval_me.py --steps-sweep 12,16,20) in 60 % of the time
    steps: int = DEFAULT_STEPS
    beta: float = DEFAULT_BETA
    seed: int = 0
    eta: float = 0.0
    loop: int = 0  # > 0: make a seamless loop, tying this many frames after the end to the first frames
    guidance: str = "gft"  # how the model was trained: "gft" (one call per step) or "cfg" (two calls, scale 1/beta)
    reconstruct: float = DEFAULT_RECONSTRUCT  # reconstruction-guidance weight for edits (0: replacement only)
    style: str = "auto"  # a dance style for models with a style condition (conditioning.STYLES); auto: from the music
    beat_guidance: float = DEFAULT_BEAT_GUIDANCE  # how hard the rhythm is pulled onto the song's beats (0: off)
    flip_repair: bool = True  # repair pelvis flips in the late steps' clean estimates (backend.motion.pelvis_flips)
    style_guidance: float = DEFAULT_STYLE_GUIDANCE  # how far an asked-for style is pushed from "auto" (0: one pass)
    speed_limit: float = SPEED_CAP  # m/s: the finished dance's stretches with a faster joint play more slowly (0: off)
    cutoff: float = DEFAULT_CUTOFF  # Hz: motion faster than this is taken out of each clean estimate (0: off)
    # Refinement of a given dance (SDEdit, Meng et al. 2022): `init` (normalised features, (L, C)) holds the frames
    # of `init_frames` ((L,) bool, or (L, C) per value) during every step noisier than `novelty` of the schedule
    # (t / T > novelty; all steps at 0), as an edit's kept frames do (noised to the step), and the model dances the
    # other frames (a retrieved dance's joins) with both sides in view; the later steps are free, so from
    # t = novelty * T on the model refines the init as SDEdit does from the init noised to that step. 1 = pure
    # generation (the init is not used).
    init: np.ndarray | None = field(default=None, repr=False, compare=False)
    init_frames: np.ndarray | None = field(default=None, repr=False, compare=False)
    novelty: float = 1.0
    # Where the steps start (a fraction of the schedule): below 1, with an init held, from the init (an edit's kept
    # values over it) noised to that level everywhere, the steps spread over [start, 0] (SDEdit's start): the frames
    # the model dances anew begin as the init has them, a retrieved dance's eased joins, not as noise.
    start: float = 1.0

    # options a dance request also carries: checked by its specs (bridge.request), one range and sentence each
    _REQUEST_FIELDS = {"steps": "steps", "beta": "beta", "reconstruct": "edit_guidance", "style": "style",
                       "beat_guidance": "beat_guidance", "speed_limit": "speed_limit",
                       "style_guidance": "style_guidance", "novelty": "novelty"}

    def validate(self) -> None:
        """Raise a ValueError naming the first option out of its range."""
        for mine, theirs in self._REQUEST_FIELDS.items():
            check_value(theirs, spec_of(theirs), getattr(self, mine))
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if self.loop < 0:
            raise ValueError(f"loop overlap must be >= 0 frames, got {self.loop}")
        if not 0.0 <= self.cutoff:
            raise ValueError(f"cutoff must be >= 0 Hz (0: off), got {self.cutoff}")
        if not 0.0 < self.start <= 1.0:
            raise ValueError(f"start must be in (0, 1], got {self.start}")
        if self.start < 1.0 and self.loop:
            raise ValueError("a loop is danced from noise (start 1): its tail, the first frames again past the end, "
                             "has no init to start from")
        if self.guidance not in ("gft", "cfg"):
            raise ValueError(f"guidance must be 'gft' or 'cfg', got {self.guidance!r}")

    def binds_init(self, t: int, train_steps: int) -> bool:
        """Whether the step at timestep `t` keeps the init's frames (see `init`)."""
        if self.init is None or self.novelty >= 1.0:
            return False
        return self.novelty <= 0.0 or t / (train_steps - 1) > self.novelty


@dataclass
class Constraint:
    """Known values (normalised features, (L, C)) and where they hold (bool mask, (L, C))."""

    values: np.ndarray
    mask: np.ndarray
    seam_window: int = SEAM_WINDOW  # frames beside kept ones that seams.smooth_seams may bend (transitions take more)


StepCallback = Callable[[int, int], bool | None]  # (step, total) -> True to cancel


def _tie_loop(x: torch.Tensor, length: int, overlap: int, free_offset: list[int]) -> torch.Tensor:
    """Make frames [length, length + overlap) equal frames [0, overlap): both copies take their mean.

    Channels in `free_offset` (the root's x and z) keep a constant offset between the copies instead, so a dance
    that travels can still loop in pose while its root moves on.
    """
    head, tail = x[:, :overlap], x[:, length : length + overlap]
    mean = (head + tail) / 2
    new_head, new_tail = mean.clone(), mean.clone()
    offset = (tail[..., free_offset] - head[..., free_offset]).mean(dim=1, keepdim=True)
    new_head[..., free_offset] = mean[..., free_offset] - offset / 2
    new_tail[..., free_offset] = mean[..., free_offset] + offset / 2
    x = x.clone()
    x[:, :overlap], x[:, length : length + overlap] = new_head, new_tail
    return x


def guidance_weights(mask: np.ndarray) -> np.ndarray:
    """(L,) reconstruction-guidance weight per frame: LONE_GAIN on frames of short kept runs (keyframes), else 1."""
    kept = np.asarray(mask, dtype=bool).any(axis=1)
    weights = np.ones(len(kept), np.float32)
    edges = np.flatnonzero(np.diff(np.r_[0, kept.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start <= LONE_RUN:
            weights[start:stop] = LONE_GAIN
    return weights


# frames: the guidance's correction near a keyframe is a smooth bump, not a one-frame kick. At 2 a keyed arm pose
# from another dance was reached in a rush (wrist 3.7 m/s braking to 1.2 on the key, 4.5x the median jerk of a
# dance low-passed at 6 Hz); at 4 the arm sets off earlier (1.7x)
KEY_SMOOTH_SIGMA = 4.0


def _near_keyframes(lone: np.ndarray, overlap: int, device) -> torch.Tensor | None:
    """(1, L + overlap, 1) bool: frames within 3 sigma of a lone keyframe, or None when there is none."""
    if not lone.any():
        return None
    reach = int(3 * KEY_SMOOTH_SIGMA)
    near = np.convolve(lone.astype(float), np.ones(2 * reach + 1))[reach:reach + len(lone)] > 0
    near = np.r_[near, np.zeros(overlap, bool)]
    return torch.as_tensor(near, device=device)[None, :, None]


def ddim_timesteps(train_steps: int, steps: int, start: float = 1.0) -> list[int]:
    """Evenly spaced training steps from `start` of the schedule to clean, e.g. [999, 949, ..., 0]."""
    ts = np.linspace(start * (train_steps - 1), 0, steps).round().astype(int)
    return sorted(set(ts.tolist()), reverse=True)


@dataclass
class _Conditions:
    """The music encodings one sampling run calls the model with (set up once, used at every step)."""

    enc: torch.Tensor
    style: torch.Tensor
    beta: torch.Tensor
    cfg: bool
    beta_value: float = 1.0  # beta as given (CFG divides by it; the tensor holds it in float32)
    style_push: float = 0.0
    enc_auto: torch.Tensor | None = None  # the song with style "auto": what an asked style is pushed away from
    enc_null: torch.Tensor | None = None  # classifier-free guidance: the unconditional encoding
    dtype: torch.dtype | None = None  # the passes' autocast dtype (precision.sampler_dtype), None: float32

    @classmethod
    def of(cls, model: Denoiser, music: torch.Tensor, options: SampleOptions, device,
           dtype: torch.dtype | None = None) -> "_Conditions":
        style = torch.full((1,), style_index(options.style, model.cfg.n_styles), dtype=torch.long, device=device)
        c = cls(model.encode_music(music, None, style), style, torch.full((1,), float(options.beta), device=device),
                options.guidance == "cfg")
        c.beta_value = float(options.beta)
        c.dtype = dtype
        c.style_push = options.style_guidance if int(style[0]) != 0 and not c.cfg else 0.0
        if c.style_push:
            c.enc_auto = model.encode_music(music, None, torch.zeros_like(style))
        if c.cfg:  # a second, unconditional pass per step
            c.enc_null = model.encode_music(music, torch.ones(1, dtype=torch.bool, device=device))
        return c

    def predict(self, model: Denoiser, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model's clean estimate x0 at step t (one pass with GFT; two with CFG or a pushed style), float32."""
        with network_pass(self.dtype):
            return self._passes(model, x, t)

    def _passes(self, model: Denoiser, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # each pass's output in float32 before the passes are combined: in bf16, CFG at scale 1 was no longer the
        # conditional pass
        if self.cfg:
            one = torch.ones(1, device=x.device)
            cond, uncond = model(x, t, one, self.enc, self.style).float(), model(x, t, one, self.enc_null).float()
            return uncond + (cond - uncond) / self.beta_value  # guidance scale 1/beta, as GFT's beta maps to
        x0 = model(x, t, self.beta, self.enc, self.style).float()
        if self.style_push:
            auto = model(x, t, self.beta, self.enc_auto, torch.zeros_like(self.style)).float()
            x0 = x0 + self.style_push * (x0 - auto)
        return x0


def _known(constraint: Constraint | None, L: int, C: int, device):
    """The constraint's values and mask as (1, L, C) tensors (None, None without one)."""
    if constraint is None:
        return None, None
    known = torch.as_tensor(constraint.values, dtype=torch.float32, device=device)[None]
    mask = torch.as_tensor(constraint.mask, dtype=torch.bool, device=device)[None]
    if known.shape != (1, L, C) or mask.shape != (1, L, C):
        raise ValueError(f"constraint must be ({L}, {C}); got values {tuple(known.shape[1:])}, "
                         f"mask {tuple(mask.shape[1:])}")
    return known, mask


def _bound_init(options: SampleOptions, known, mask, L: int, C: int, device):
    """(values, mask) as (1, L, C) tensors while the init is held: the init's frames, an edit's kept values over
    them; (None, None) without an init."""
    if options.init is None or options.novelty >= 1.0:
        return None, None
    init = torch.as_tensor(np.asarray(options.init, dtype=np.float32), device=device)[None]
    frames = np.ones(L, bool) if options.init_frames is None else np.asarray(options.init_frames, dtype=bool)
    if init.shape != (1, L, C) or frames.shape not in ((L,), (L, C)):
        raise ValueError(f"the init must be ({L}, {C}) with ({L},) or ({L}, {C}) frames; got "
                         f"{tuple(init.shape[1:])}, {frames.shape}")
    held = torch.as_tensor(frames, device=device)
    held = held[None, :, None].expand(1, L, C) if held.ndim == 1 else held[None]
    if known is None:
        return init, held
    return torch.where(mask, known, init), mask | held


def _shape_estimate(x0: torch.Tensor, i: int, n: int, options: SampleOptions, L: int, k: int, known, mask,
                    beat_guide, flip_repair, kept_pelvis, ab: torch.Tensor) -> torch.Tensor:
    """A step's clean estimate nudged onto the beats, its pelvis flips repaired, low-passed at the last step, with
    the kept values in place and a loop's ends tied."""
    if beat_guide is not None and options.beat_guidance > 0:
        x0 = beat_guide.nudge(x0, options.beat_guidance, (1 - ab).sqrt(), None if mask is None else ~_pad(mask, k))
    if flip_repair is not None and options.flip_repair and repairs_at(i, n):
        x0 = flip_repair.project(x0, kept_pelvis)
    if options.cutoff > 0 and i == n - 1:
        if k:
            x0 = _low_pass_loop(_tie_loop(x0, L, k, ROOT_XZ), L, k, options.cutoff, known, mask)
        else:
            x0 = _low_pass_pose(x0, options.cutoff) if known is None else \
                _low_pass_around_kept(x0, known, mask, options.cutoff)
    if known is not None:
        x0 = torch.where(_pad(mask, k), _pad(known, k), x0)
    return _tie_loop(x0, L, k, ROOT_XZ) if k else x0


@torch.no_grad()
def sample(model: Denoiser, music: torch.Tensor, options: SampleOptions, constraint: Constraint | None = None,
           callback: StepCallback | None = None, schedule: Schedule | None = None,
           return_extended: bool = False, beat_guide=None, flip_repair=None) -> torch.Tensor:
    """Sample normalised motion features (L, C) for normalised music inputs (L, music_dim).

    `beat_guide` (a beat_guidance.BeatGuide) nudges each step's clean estimate towards the song's beats, with weight
    `options.beat_guidance`. `flip_repair` (a pelvis_flips.PelvisFlipRepair) re-interpolates pelvis flips in each
    step's clean estimate when `options.flip_repair` is on.

    With `options.loop` = k the result loops: frame L would be frame 0 again (pose and velocity), because the sampler
    dances k frames past the end on the song's first k frames and ties them to the first k frames at every step.
    """
    try:
        return _sample(model, music, options, constraint, callback, schedule, return_extended, beat_guide, flip_repair)
    finally:
        model.forget_music()  # the keys the blocks kept of this run's music: a long song's would stay in memory


def _sample(model: Denoiser, music: torch.Tensor, options: SampleOptions, constraint: Constraint | None,
            callback: StepCallback | None, schedule: Schedule | None, return_extended: bool, beat_guide,
            flip_repair) -> torch.Tensor:
    """sample()'s steps."""
    options.validate()
    schedule = schedule or Schedule()
    device = next(model.parameters()).device
    L, C = music.shape[0], model.cfg.motion_dim
    k = min(options.loop, L)
    if k:  # a loop: dance on past the end over the song's first k frames, tied to the first k frames
        music = torch.cat([music, music[:k]], dim=0)
    gen = torch.Generator(device="cpu").manual_seed(options.seed)
    x = torch.randn(1, music.shape[0], C, generator=gen).to(device)
    known, mask = _known(constraint, L, C, device)
    guided = known is not None and options.reconstruct > 0
    # the reconstruction guidance differentiates through the passes: float32, as its figures were made
    cond = _Conditions.of(model, music[None].to(device), options, device, None if guided else sampler_dtype(device))
    kept_pelvis = None  # frames whose pelvis an edit keeps: the flip repair blends between them, never through
    if known is not None and flip_repair is not None:
        kept_pelvis = _pad(mask, k)[0, :, PELVIS].any(dim=-1).cpu().numpy()
    if guided:
        weights = guidance_weights(constraint.mask)
        pull = torch.as_tensor(weights, dtype=torch.float32, device=device)[None, :, None]
        near_keys = _near_keyframes(weights > 1.0, k, device)
    bound = _bound_init(options, known, mask, L, C, device)  # the kept values while the init is held
    ts = ddim_timesteps(schedule.steps, options.steps)
    if options.start < 1.0 and bound[0] is not None:  # from the init noised to the start level (SDEdit)
        ts = ddim_timesteps(schedule.steps, options.steps, options.start)
        x = schedule.q_sample(bound[0], torch.full((1,), ts[0], device=device, dtype=torch.long), x)
    for i, t in enumerate(ts):
        if callback is not None and callback(i, len(ts)):
            raise Cancelled(f"cancelled at step {i} of {len(ts)}")
        adapt_threads()  # as many threads as the cores other work leaves free now (Blender may start a bake)
        t_now = torch.full((1,), t, device=device, dtype=torch.long)
        t_prev = torch.full((1,), ts[i + 1] if i + 1 < len(ts) else -1, device=device, dtype=torch.long)
        ab, ab_prev = schedule.ab(t_now), schedule.ab(t_prev)
        with torch.set_grad_enabled(guided):  # a graph only when the guidance needs its gradient
            if guided:
                x = x.detach().requires_grad_(True)
            x0 = cond.predict(model, x, t_now)
            if guided:
                error = ((x0 - _pad(known, k)) ** 2 * _pad(mask * pull, k)).sum()
                grad, = torch.autograd.grad(error, x)
                if near_keys is not None:
                    grad = torch.where(near_keys, smooth_in_time(grad, KEY_SMOOTH_SIGMA), grad)
                x, x0 = x.detach(), (x0 - options.reconstruct * ab.sqrt() / 2 * grad).detach()
        kept, where = bound if options.binds_init(t, schedule.steps) else (known, mask)
        x0 = _shape_estimate(x0, i, len(ts), options, L, k, kept, where, beat_guide, flip_repair, kept_pelvis, ab)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        sigma = options.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
        noise = torch.randn(x.shape, generator=gen).to(device)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * noise
        if kept is not None:
            # known parts follow the forward process of the known values, so the model sees consistent context
            noised = schedule.q_sample(kept, t_prev, torch.randn(kept.shape, generator=gen).to(device))
            x = torch.where(_pad(where, k), _pad(noised, k), x)
        if k:
            x = _tie_loop(x, L, k, ROOT_XZ)
    if callback is not None:
        callback(len(ts), len(ts))
    return x[0, :L] if not return_extended else x[0]


def _low_pass_pose(x0: torch.Tensor, cutoff: float, periodic: bool = False) -> torch.Tensor:
    """Clean estimate (1, L, C) with root and joint rotations low-passed at `cutoff` Hz (contacts as they are)."""
    moving = torch.ones(x0.shape[-1], dtype=torch.bool, device=x0.device)
    moving[CONTACTS] = False
    return torch.where(moving, low_pass(x0, cutoff, FPS, periodic=periodic), x0)


def _low_pass_loop(x0: torch.Tensor, L: int, k: int, cutoff: float, known: torch.Tensor | None,
                   mask: torch.Tensor | None) -> torch.Tensor:
    """`_low_pass_pose` for a loop (1, L + k, C), whose frames [L, L + k) are frames [0, k) again (tied).

    Filtered as one period, so the filter adds no kink at the join from the last frame back to the first (the ends
    filtered apart did: the join's jerk 3.95x the dance's median, now 2.79x, the rest being the loop tie's own; the
    unedited dance at the same frames 1.14x). The root's floor position may travel: the travel is taken off as a ramp
    over the period and put back.
    """
    travel = torch.zeros_like(x0[:, :1])
    travel[..., ROOT_XZ] = (x0[:, L:L + k, ROOT_XZ] - x0[:, :k, ROOT_XZ]).mean(dim=1, keepdim=True)
    ramp = torch.arange(L, device=x0.device, dtype=x0.dtype)[None, :, None] / L * travel
    one = x0[:, :L] - ramp
    if known is None:
        one = _low_pass_pose(one, cutoff, periodic=True)
    else:  # kept frames in place; their ramp comes off alike, so they come back exact
        one = _low_pass_around_kept(one, known - ramp, mask, cutoff, periodic=True)
    one = one + ramp
    return torch.cat([one, one[:, :k] + travel], dim=1)


KEPT_EASE_SIGMA = 3.0  # frames: how far the filter's miss at a kept value is spread into the frames beside it


def _low_pass_around_kept(x0: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, cutoff: float,
                          periodic: bool = False) -> torch.Tensor:
    """`_low_pass_pose` for an edit: filtered with the kept values in place, so the frames beside a key lead into it,
    and what the filter moved at kept values eased back in over a few frames, so re-inserting them exactly (which
    follows) leaves no one-frame spike (a keyed arm pose snapped in at 4.5x the dance's median jerk otherwise)."""
    filtered = _low_pass_pose(torch.where(mask, known, x0), cutoff, periodic)
    kept = mask.to(x0.dtype)
    miss = smooth_in_time(torch.where(mask, known - filtered, torch.zeros_like(x0)), KEPT_EASE_SIGMA, periodic)
    weight = smooth_in_time(kept, KEPT_EASE_SIGMA, periodic)
    peak = float(gaussian_kernel(KEPT_EASE_SIGMA, dtype=x0.dtype).max())  # the blur's weight at a lone kept frame
    # a lone kept frame gets its miss back in full and a Gaussian falloff beside it; a kept range, its smoothed miss
    return filtered + miss / weight.clamp(min=peak)


def _pad(t: torch.Tensor, k: int) -> torch.Tensor:
    """Constraint tensors extended over a loop's overlap (those frames are never constrained)."""
    if not k:
        return t
    return torch.cat([t, torch.zeros_like(t[:, :k])], dim=1)
