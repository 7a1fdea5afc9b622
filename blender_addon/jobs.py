"""The job in flight (one at a time) and the one timer that follows it.

Operators return at once: `start_job` sends the request and registers `tick`, which does a bounded amount of work
(at most a few dozen messages) every 0.1 s, updates the panel and applies the result, so Blender stays responsive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import bpy
import numpy as np

from bridge import protocol as P
from bridge.client import BridgeClient

from . import backend_process, results, stored_dance

TICK_SECONDS = 0.1


@dataclass
class _Session:
    """What the timer needs to follow the job and apply its result."""

    client: BridgeClient | None = None
    job: str = ""
    scene: str = ""
    pending_variants: list[int] = field(default_factory=list)
    edit_target: str = ""  # the armature an edit applies to ('' for a new dance)
    cancel_requested: bool = False  # Cancel was pressed before the server named the job
    video_parts: dict = field(default_factory=dict)  # part index -> frames, while a video streams in
    song: str = ""  # absolute path of the song sent
    options: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)  # sent again with each further variant or take
    settings: stored_dance.DanceSettings | None = None
    variant: int = 0  # index of the variant being generated (0: the first, applied to the selected armature)
    video_folder: str = ""
    mode: str = ""  # a choreography job: "takes", "comp", "keys" or "repeat" ('' for the others)
    take_number: int = 1  # the number the next take gets
    switches: list[int] = field(default_factory=list)  # a comp's switch frames (motion frames)
    takes_of_range: bool = False  # the takes regenerate a range of the armature's dance
    started: float = 0.0  # time.monotonic() when Generate sent the job: the status says how long it took


SESSION = _Session()


def busy() -> bool:
    """Whether a job is being followed (one at a time)."""
    return SESSION.client is not None


def _fail(s, text: str) -> None:
    """Show a failure in the panel and the status bar. (No popup: Blender's popup_menu from a timer crashes
    without a window under the cursor, and a crash would lose the user's unsaved work.)"""
    s.status = text
    s.failed = True


def _apply_motion_result(msg: P.Message, s) -> bpy.types.Object | None:
    motion = P.motion_from_message(msg)
    settings = SESSION.settings or stored_dance.DanceSettings(start_frame=s.start_frame)
    if SESSION.mode:
        from .choreography_results import apply_choreography_result

        apply_choreography_result(bpy.context, msg, motion, s, SESSION)
        results.push_undo(f"MACE-Dance {SESSION.mode}")
        s.progress = 1.0
        return None
    if SESSION.edit_target:
        target = bpy.data.objects.get(SESSION.edit_target)
        if target is None:
            raise ValueError(f"the armature {SESSION.edit_target} was deleted while its dance was being edited")
        bpy.context.view_layer.objects.active = target
        obj = results.apply_result(bpy.context, motion, settings=settings)
        s.status = f"applied the edited {motion.duration:.1f} s of dance"
    elif SESSION.variant == 0:
        settings.beat_frames = [float(b) for b in msg.get("beat_frames") or []]
        obj = results.apply_result(bpy.context, motion, msg.get("beat_frames"), settings=settings,
                                   sections=msg.get("sections"))
        note = results.place_song(bpy.context, SESSION.song, settings.start_frame, settings.time_start,
                                  settings.time_end) if s.add_sound else ""
        took = time.monotonic() - SESSION.started
        s.status = f"applied {motion.duration:.1f} s of dance in {took:.1f} s" + (f"; {note}" if note else "")
    else:  # further variants: each on its own SMPL armature, side by side
        bpy.context.view_layer.objects.active = None
        obj = results.apply_result(bpy.context, motion, settings=settings)
        obj.location.x = 1.2 * SESSION.variant
        s.status = f"applied variant {SESSION.variant + 1} ({motion.duration:.1f} s)"
    results.push_undo("Apply dance")
    s.progress = 1.0
    return obj


def tick() -> float | None:
    """Timer callback: move messages, update the panel, apply the result; returns the next interval or None.
    Nothing escapes it: a failure ends the job with a sentence in the panel instead of a dead timer."""
    client = SESSION.client
    scene = bpy.data.scenes.get(SESSION.scene) if SESSION.scene else None
    if client is None or scene is None:
        return _done() if client is not None else None
    s = scene.mace_dance
    try:
        return _tick(client, s)
    except Exception as exc:  # noqa: BLE001 - keep Blender and the add-on usable
        _fail(s, f"The job stopped: {exc}")
        SESSION.pending_variants = []
        return _done()


def _tick(client: BridgeClient, s) -> float | None:
    for msg in client.tick(max_messages=32):
        if msg.get("job") not in (None, SESSION.job) and msg.type != "accepted":
            continue
        if msg.type == "accepted" and not SESSION.job:
            SESSION.job = msg.get("job")
            s.job, s.status, s.failed = SESSION.job, "queued", False
            if SESSION.cancel_requested:  # Cancel pressed while the song was still on its way
                client.cancel(SESSION.job)
                s.status = "cancelling"
        elif msg.type == "status" and msg.get("state") == "queued":
            s.status = f"queued: {msg.get('position')} in line"
        elif msg.type == "uploading":  # a big song goes up in chunks before its job exists
            total = max(1, int(msg.get("total") or 1))
            s.progress = float(msg.get("sent")) / total
            s.status = f"uploading the song: {msg.get('sent') / 2 ** 20:.1f} of {total / 2 ** 20:.1f} MB"
        elif msg.type == "status" and msg.get("state") == "reconnecting":
            s.status = f"the server went quiet (restarted?); waiting for it ({msg.get('silent_s'):.0f} s)"
        elif msg.type == "progress":
            total = max(1, int(msg.get("total") or 1))
            s.progress = float(msg.get("step")) / total
            s.status = f"{msg.get('stage')}: {msg.get('step')}/{total}"
        elif msg.type == "result" and "frames" in msg.arrays:
            SESSION.video_parts[int(msg.get("part", 0))] = np.array(msg.arrays["frames"])
            parts = int(msg.get("parts", 1))
            s.status = f"receiving video: part {len(SESSION.video_parts)}/{parts}"
            if len(SESSION.video_parts) == parts:
                try:
                    frames = np.concatenate([SESSION.video_parts[i] for i in range(parts)])
                    start = SESSION.settings.start_frame if SESSION.settings else s.start_frame
                    results.apply_video(bpy.context, frames, SESSION.video_folder, float(msg.get("fps") or 30.0),
                                        start)
                    s.status, s.progress = f"loaded {len(frames)} video frames", 1.0
                except Exception as exc:  # noqa: BLE001 - show it, keep Blender running
                    _fail(s, f"Could not load the video into {SESSION.video_folder}: {exc}")
                SESSION.video_parts = {}
                return _done()
        elif msg.type == "result":
            try:
                _apply_motion_result(msg, s)
            except Exception as exc:  # noqa: BLE001 - show it, keep Blender running
                _fail(s, f"Could not apply the dance: {exc}")
                SESSION.pending_variants = []
            if SESSION.pending_variants:
                return _next_variant(s)
            return _done()
        elif msg.type == "cancelled":
            s.status = "Cancelled; the scene is unchanged." if SESSION.variant == 0 else \
                f"Cancelled; {SESSION.variant} {'take' if SESSION.mode == 'takes' else 'variant'}(s) were applied before."
            SESSION.pending_variants = []
            return _done()
        elif msg.type == "error":  # about our job or our request (other jobs were filtered out above)
            _fail(s, _error_sentence(str(msg.get("message") or "")))
            SESSION.pending_variants = []
            return _done()
    exited = backend_process.backend_exited(job_accepted=bool(SESSION.job))
    if exited:
        _fail(s, exited)
        return _done()
    silent = time.monotonic() - client.last_heard
    if SESSION.job and silent > P.SILENCE_LIMIT_S:  # the client has re-attached and reconnected meanwhile
        _fail(s, f"The server has not answered for {silent:.0f} s; the job was given up here (it may still "
                 "finish on the server).")
        SESSION.pending_variants = []
        return _done()
    _status_bar(f"MACE-Dance: {s.status}" if s.status else None)
    return TICK_SECONDS


def _error_sentence(message: str) -> str:
    """A backend error as one sentence for the panel (the backend names the user's song, not its own copy)."""
    message = message.strip().rstrip(".")
    return f"The backend could not do it: {message}." if message else "The backend reported an error."


def _next_variant(s) -> float:
    SESSION.variant += 1
    seed = SESSION.pending_variants.pop(0)
    SESSION.job = ""
    SESSION.settings = replace(SESSION.settings, seed=seed)
    s.status = f"{'take' if SESSION.mode == 'takes' else 'variant'} {SESSION.variant + 1}: sending the song"
    SESSION.client.submit_motion(Path(SESSION.song).read_bytes(), Path(SESSION.song).name, arrays=SESSION.arrays,
                                 **{**SESSION.options, "seed": seed})
    return TICK_SECONDS


def _status_bar(text: str | None) -> None:
    """Mirror the panel's status in Blender's status bar (needs a window; background mode has none)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        try:
            window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError):
            pass


def _done() -> None:
    _status_bar(None)
    SESSION.job, SESSION.cancel_requested, SESSION.arrays = "", False, {}
    if SESSION.client is not None:
        SESSION.client.close()
        SESSION.client = None
    return None


def start_job(context, path: str | None, options: dict, arrays: dict | None = None, kind: str = "motion",
              settings: stored_dance.DanceSettings | None = None, edit_target: str = "") -> None:
    """Send a job (the song for motion jobs; the dance and image arrays for video) and start the timer that follows
    it. Raises BackendSetupError (a preference is wrong) or OSError (the song cannot be read) before sending."""
    s = context.scene.mace_dance
    SESSION.started = time.monotonic()
    song_bytes = Path(path).read_bytes() if kind == "motion" else b""
    client = backend_process.make_client()
    SESSION.client = client
    SESSION.scene = context.scene.name
    SESSION.job, SESSION.cancel_requested = "", False
    SESSION.edit_target = edit_target
    SESSION.video_parts = {}
    SESSION.settings = settings
    SESSION.variant, SESSION.pending_variants = 0, []
    SESSION.mode, SESSION.switches, SESSION.takes_of_range = "", [], False
    if kind == "motion":
        SESSION.song, SESSION.options, SESSION.arrays = path, dict(options), dict(arrays or {})
        client.submit_motion(song_bytes, Path(path).name, arrays=arrays, **options)
        s.status = "sending the song"
    else:
        SESSION.song = ""
        client.submit_job(kind, options, arrays)
        s.status = "sending the dance and the image"
    s.progress, s.job, s.failed = 0.0, "", False
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_SECONDS)


def abandon() -> None:
    """Forget a job that could not be started (its client, if one was made, is closed)."""
    SESSION.pending_variants = []
    _done()


def cancel() -> None:
    """Cancel the job in flight: at once if the server has named it, else as soon as it does."""
    if SESSION.client is None:
        return
    if not bpy.app.timers.is_registered(tick):  # nothing follows the job any more: just forget it
        _done()
    elif SESSION.job:
        SESSION.client.cancel(SESSION.job)
    else:
        SESSION.cancel_requested = True


@bpy.app.handlers.persistent
def _abandon_on_load(*_args) -> None:
    """Another .blend is being opened: the job's result belongs to the scene being closed, so cancel it."""
    if SESSION.client is not None:
        if SESSION.job:
            try:
                SESSION.client.cancel(SESSION.job)
            except Exception:  # noqa: BLE001 - the file is loading either way
                pass
        if bpy.app.timers.is_registered(tick):
            bpy.app.timers.unregister(tick)
        abandon()


def register() -> None:
    """Cancel a running job when another file is opened (load_pre)."""
    if _abandon_on_load not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_abandon_on_load)


def stop() -> None:
    """Forget the job in flight and stop the local backend (add-on disabled or Blender quitting)."""
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if _abandon_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_abandon_on_load)
    _done()
    backend_process.stop_backend()
