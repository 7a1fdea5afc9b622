"""Starting a job from an operator: the song checked, the DanceRequest built and checked, the job sent; every problem
is one sentence reported as the operator's error (CANCELLED)."""

from __future__ import annotations

import os

import bpy

from bridge.client import BridgeFailure
from bridge.request import DanceRequest, RequestError
from bridge.request_wire import to_wire

from . import jobs, stored_dance
from .backend_process import BackendSetupError


def song_problem(path: str) -> str:
    """'' if `path` is a readable, non-empty file, else a sentence saying what is wrong with it."""
    if not path:
        return "Choose a song file first (the panel's Song is empty)."
    if not os.path.isfile(path):
        return f"The song {path} does not exist; choose it again in the panel's Song."
    if os.path.getsize(path) == 0:
        return f"The song {path} is empty (0 bytes); choose another file."
    if not os.access(path, os.R_OK):
        return f"The song {path} cannot be read (no permission)."
    return ""


def fail(op: bpy.types.Operator, text: str) -> set[str]:
    """Report `text` as the operator's error, in the status bar and in the panel's red box alike."""
    settings = getattr(bpy.context.scene, "mace_dance", None) if bpy.context.scene is not None else None
    if settings is not None:
        settings.status, settings.failed = text, True
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


def start(op: bpy.types.Operator, context, path: str | None, options: dict, arrays=None, kind: str = "motion",
          settings: stored_dance.DanceSettings | None = None, edit_target: str = "") -> set[str]:
    """Start a job; a setup problem is reported as one sentence and the operator is CANCELLED."""
    try:
        jobs.start_job(context, path, options, arrays, kind, settings=settings, edit_target=edit_target)
    except (BackendSetupError, OSError) as exc:
        jobs.abandon()
        if isinstance(exc, (BackendSetupError, BridgeFailure)):  # already a sentence (a song too big to send, ...)
            text = str(exc)
        else:
            text = f"Could not read {exc.filename or path}: {exc.strerror or exc}."
        op.report({"ERROR"}, text)
        context.scene.mace_dance.status, context.scene.mace_dance.failed = text, True
        return {"CANCELLED"}
    return {"FINISHED"}


def start_dance(op: bpy.types.Operator, context, path: str, settings: stored_dance.DanceSettings,
                edit_target: str = "", **request: object) -> set[str]:
    """Send the dance that `request` (DanceRequest fields) asks for on the song at `path`, with the panel's beat
    overrides (tempo, meter, downbeat, the beat markers): every operator's dance goes through here, so they are
    added once."""
    from .beat_overrides import request_overrides

    if not request.get("steps"):  # the panel's 0: the backend chooses (bridge.request LIBRARY/GENERATION_STEPS)
        request.pop("steps", None)
    try:
        request = {**request_overrides(context, settings), **request}
    except ValueError as exc:
        return fail(op, str(exc))
    try:
        options, arrays = to_wire(DanceRequest(**request).validate())
    except RequestError as exc:
        return fail(op, f"The dance settings cannot be used: {exc}.")
    return start(op, context, path, options, arrays, settings=settings, edit_target=edit_target)


def section(settings: stored_dance.DanceSettings) -> dict:
    """The song section a stored dance was made for, as request fields ({} for the whole song)."""
    return {"start": settings.time_start, "end": settings.time_end} if settings.time_end > settings.time_start else {}


def panel_settings(context) -> stored_dance.DanceSettings:
    """The settings a new dance (Generate, whole-song takes) is made with: the panel's, the Export box's in place and
    loop blend, and the section when the whole song is not asked for."""
    from .export_props import generate_options

    s = context.scene.mace_dance
    game = generate_options(context.scene)
    settings = stored_dance.DanceSettings(song=s.audio_path, seed=s.seed, beta=s.beta, steps=s.steps, style=s.style,
                                          beat_sync=s.beat_sync, start_frame=s.start_frame,
                                          beat_guidance=s.beat_guidance, novelty=s.novelty,
                                          in_place=game["in_place"], loop=game["loop"])
    if not s.whole_song:
        settings.time_start, settings.time_end = s.time_start, s.time_end
    return settings


def game_options(settings: stored_dance.DanceSettings, editing: bool = False) -> dict:
    """The game-ready request fields a dance's follow-up jobs keep: in place always (an edit of a dance on the spot
    must not travel again), the loop blend for fresh dances only (an edit keeps the frames that already loop)."""
    return {"in_place": settings.in_place} if editing else {"in_place": settings.in_place, "loop": settings.loop}
