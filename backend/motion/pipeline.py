"""One dance request in, one Motion and a report out: the only place a dance is assembled.

The CLI, the server's runner and the benchmarks call `dance`. Its stages, in order:
  1. request      the options checked (bridge.request) and against the model (its styles)
  2. constraints  the dance to edit fitted to the music; kept frames / joints, a comp's joins, a root path
  3. retrieve     with novelty < 1: a dance assembled from the figure library beside the weights for the whole song
                  (backend.motion.retrieval; the seed picks among the matching phrases) becomes the sampler's init
                  (SampleOptions.init): held while the noise is above `novelty` of the schedule, the model dancing
                  its joins and the way into an edit's kept values, then refined; it is the free dance keyed poses
                  are reached from; a song far from its style's tempo is danced on every other beat (or between
                  its beats too), and the later stages follow those beats. Without a library, or when an edit
                  keeps a value on every frame: pure generation
  4. keys         keyed poses (reached where a free dance stands when no root was keyed), snapped onto beats
  5. sample       the Motion Expert's masked DDIM, then the clean-up passes listed in backend.motion.passes
                  (pelvis flips, seams, loop seam, beat sync, foot lock, skim lift, floor, speed limit)
  6. repeats      repeated sections danced as their first occurrence, with model-made transitions
  7. in_place     the travel moved to root_motion
Every stage that ran leaves a StageNote in the report: what it changed, in one line, and its figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from backend.motion.beatsync import beat_sync_config
from backend.motion.conditioning import style_index
from backend.motion.constraints import around_keys, edit_constraint, fit_reference, pose_keys, with_keys
from backend.motion.passes import StageNote
from backend.motion.sampling import SampleOptions
from backend.music.features import FPS, MusicFeatures
from backend.music.overrides import music_for
from bridge.request import EDIT_STEPS, GENERATION_STEPS, LIBRARY_START, LIBRARY_STEPS, DanceRequest, RequestError
from rigs.motion import Motion

Progress = Callable[[str, int, int], Any]  # (stage, step, total)


@dataclass
class DanceReport:
    """What each stage of one dance did, in order."""

    stages: list[StageNote] = field(default_factory=list)
    edited: bool = False  # kept values constrained the dance (its kept parts came back exactly)
    key_frames: list[int] | None = None  # where keyed poses landed (on beats when snapped)
    repeats: list[list] | None = None  # [source, target, frames, label] per repeated section
    steps: int = 0  # the DDIM steps the dance was sampled with (the request's, or the pipeline's choice)

    def add(self, name: str, note: str = "", detail: Any = None, seconds: float = 0.0) -> None:
        """Record a stage."""
        self.stages.append(StageNote(name, note, detail, seconds))

    def lines(self) -> list[str]:
        """The lines to tell the user: each stage that changed something, in order."""
        return [s.note for s in self.stages if s.note]

    def detail(self, name: str) -> Any:
        """The figures of the named stage (None when it did not run)."""
        return next((s.detail for s in self.stages if s.name == name), None)

    def ran(self) -> list[str]:
        """The names of the stages that ran, in order."""
        return [s.name for s in self.stages]

    def wire_fields(self) -> dict[str, Any]:
        """The report as a result message's fields."""
        out: dict[str, Any] = {"report": self.lines()}
        if self.edited or self.repeats:
            out["edited"] = True
        if self.key_frames is not None:
            out["key_frames"] = self.key_frames
        if self.repeats is not None:
            out["repeats"] = self.repeats
        if self.steps:
            out["steps"] = self.steps
        return out


def sample_options(request: DanceRequest) -> SampleOptions:
    """The sampler's options for a checked request."""
    options = SampleOptions(steps=request.steps or GENERATION_STEPS, beta=request.beta, seed=request.seed,
                            loop=int(round(request.loop * FPS)), style=request.style,
                            beat_guidance=request.beat_guidance, style_guidance=request.style_guidance,
                            speed_limit=request.speed_limit)
    if request.edit_guidance is not None:
        options.reconstruct = request.edit_guidance
    return options


def _stage(progress: Progress | None, stage: str):
    """A sampler callback that reports steps as `stage` (None without a progress sink)."""
    return None if progress is None else (lambda i, n: progress(stage, i, n) and None)


def dance(request: DanceRequest, music: MusicFeatures, expert, progress: Progress | None = None
          ) -> tuple[Motion, DanceReport]:
    """The dance `request` asks for on `music` with `expert` (a generate.MotionExpert), and what each stage did."""
    request = request.validate()
    try:
        style_index(request.style, expert.model.cfg.n_styles)
    except ValueError as exc:
        raise RequestError("style", str(exc)) from None
    if music.num_frames < 2:
        raise RequestError("music", "the music is too short to dance to")
    music = music_for(request, music)  # the animator's tempo, meter, downbeat or beat map, if any
    report = DanceReport()
    options, frames, norm = sample_options(request), music.num_frames, expert.normalizer
    sync, denoise = beat_sync_config(request.beat_sync), _stage(progress, "denoise")
    report.add("request", detail=request)
    reference = fit_reference(request.reference, frames) if request.reference is not None else None
    constraint = edit_constraint(request, reference, frames, norm)
    if constraint is not None:
        off = request.path_xz is not None and request.lock_feet
        report.add("constraints", "(the foot lock is off while following a path: it would pull the root off it)"
                   if off else "", constraint)
    retrieved, song = None, music  # song: its own beats, which keys snap to and its sections are found on
    if request.novelty < 1.0 and not (request.repeat != "off" and reference is not None):
        retrieved = _retrieve(request, music, expert, report)
    # the beats the library's figures step (every other one of a fast song): the model's beat column, the beat
    # guidance and the beat sync follow those while the library's dance is held, not a beat the dance does not step
    danced = retrieved.music if retrieved is not None and retrieved.music is not None else music
    if request.keys is not None:
        base = reference
        if base is None:  # the free dance (on the path) the keys are danced into, and where its dancer stands
            if retrieved is not None:  # the free dance is the refined library dance
                _hold(retrieved, request, options, norm, constraint, None)
            base = expert.run(danced if options.init is not None else song, options, constraint, denoise,
                              request.lock_feet, sync).motion
        keys = pose_keys(request.keys, base, song.beat_frames, frames)
        if request.edit is None:  # keys on a dance (given or the free one): re-danced only around them, the pelvis
            # led through each window; a second free dance met the first one's stands only at the keys (lunges)
            constraint = around_keys(base, keys, norm, constraint)
        constraint = with_keys(constraint, keys, norm, frames)
        report.key_frames = keys.frames.tolist()
        report.add("keys", f"keyed poses at {', '.join(f'{f / FPS:.2f}' for f in keys.frames)} s"
                   + (" (moved onto beats)" if request.keys.snap_to_beats else ""), keys)
    report.edited = constraint is not None
    if retrieved is not None:
        _hold(retrieved, request, options, norm, constraint, reference, report)
    music = danced if options.init is not None else song  # the model dancing alone hears the song's own beats
    if request.repeat != "off" and reference is not None:
        motion = reference  # repeat the sections of the dance given
    else:  # the sampler and the clean-up passes each leave their note
        report.steps = options.steps
        motion = expert.run(music, options, constraint, denoise, request.lock_feet, sync, report.stages).motion
    if request.repeat != "off":
        motion = _repeats(request, music, expert, motion, options, progress, report, song)
    if request.in_place:
        from backend.motion.gameready import in_place

        motion = in_place(motion)
        report.add("in_place", "", None)
    return motion, report


def _retrieve(request: DanceRequest, music: MusicFeatures, expert, report: DanceReport):
    """The retrieve stage's assembly: the library's dance for the whole song (retrieval.Retrieved), or None with a
    note saying why the model dances alone."""
    from backend.motion.retrieval import RetrievalError, assemble

    alone = "the model dances alone (as with novelty 1)"
    library = expert.library() if hasattr(expert, "library") else None
    if library is None:
        report.add("retrieve", f"retrieve: no figure library (figures.npz) beside these weights: {alone}")
        return None
    started = time.perf_counter()
    try:
        got = assemble(library, music, request.style, request.seed)
    except RetrievalError as exc:
        report.add("retrieve", f"retrieve: {exc}: {alone}")
        return None
    got.seconds = time.perf_counter() - started
    return got


def _hold(got, request: DanceRequest, options: SampleOptions, norm, constraint, reference: Motion | None,
          report: DanceReport | None = None) -> None:
    """The retrieved dance as the sampler's init (options.init), held on the frames away from its joins and from an
    edit's kept values, placed where a given dance stands; with `report`, the retrieve stage's line."""
    import numpy as np

    from backend.motion.representation import motion_to_features
    from backend.motion.retrieval import held_frames, placed_on
    from backend.motion.sampling import ROOT_XZ

    kept = None if constraint is None else constraint.mask.any(axis=1)
    clear = held_frames(got.motion.num_frames, [], kept)  # the frames far enough from an edit's kept values
    held = clear & held_frames(got.motion.num_frames, got.model_joins())
    if not held.any():
        options.init, options.init_frames, options.novelty, options.start = None, None, 1.0, 1.0
        # the model dances the edit alone, from noise: keyed poses' windows (their dance kept around them) as an
        # edit's new frames, an edit that keeps something on every frame as generation
        keyed = request.keys is not None and request.novelty <= 0.0
        options.steps = request.steps or (EDIT_STEPS if keyed else GENERATION_STEPS)
        if report is not None:
            report.add("retrieve", "retrieve: no frame lies clear of the edit's kept values (kept joints, a path or a "
                                   "comp's joins): the model dances alone (as with novelty 1)")
        return
    motion = got.motion if reference is None else placed_on(got.motion, reference, held)
    options.init = norm.norm_motion(motion_to_features(motion)).astype("float32")
    # the pelvis keeps the library's path through the joins too: the model dances the body there, not the travel
    # (danced freely, a join 4 m from the start, where the model's root inputs lie far out of what it learnt, threw
    # the pelvis at 4.7 m/s; the rumba's dancers never pass 1.7). Not beside an edit's kept values: there the model
    # leads the pelvis from the library's path to the kept one.
    frames = np.repeat(held[:, None], options.init.shape[1], axis=1)
    frames[:, ROOT_XZ] |= clear[:, None]
    options.init_frames, options.novelty = frames, request.novelty
    if request.novelty <= 0.0:  # the model dances the joins only: fewer steps do as well
        # unedited, from the library's dance noised part way (its eased joins), as every frame but the joins is; a
        # loop's tail (the song's first frames again, danced on past the end) is no part of the library's dance
        free = constraint is None and not options.loop
        options.start = LIBRARY_START if free else 1.0
        if request.steps is None:
            options.steps = LIBRARY_STEPS if free else EDIT_STEPS
    if report is not None:
        begun = f", begun from the library's eased joins noised to {options.start:g}" if options.start < 1.0 else ""
        report.add("retrieve", f"{got.describe()}; refined by the model at novelty {request.novelty:g} "
                               f"({int((~held).sum())} frames at joins danced anew{begun})", got, got.seconds)


def _repeats(request: DanceRequest, music: MusicFeatures, expert, motion: Motion, options: SampleOptions,
             progress: Progress | None, report: DanceReport, song: MusicFeatures | None = None) -> Motion:
    """The repeats stage: each repeated section (of `song`, the song's own beats) danced as its first occurrence."""
    from backend.motion.choreography import dance_repeats

    mirrored = request.repeat == "mirror"
    options = replace(options, init=None, init_frames=None, novelty=1.0,  # the repeats' joins are the model's own
                      steps=request.steps or GENERATION_STEPS, start=1.0)
    motion, plan = dance_repeats(expert, music, motion, options, mirrored, callback=_stage(progress, "repeat"),
                                 lock_feet=request.lock_feet, song=song)
    report.repeats = [[p.source, p.target, p.frames, p.label] for p in plan]
    for p in plan:
        report.add("repeats", f"repeat: {p.label} at {p.target / FPS:.1f} s dances the phrase from "
                              f"{p.source / FPS:.1f} s again ({p.frames / FPS:.1f} s{', mirrored' if mirrored else ''})",
                   p)
    if not plan:
        report.add("repeats", "repeat: no section of this music repeats an earlier one (see `mace-dance analyse`)")
    return motion
