"""Choreographer's tools in the panel: takes on NLA tracks (audition, mark, comp), dance through keyed poses, repeat.

Every take is its own action, on its own muted NLA track of the same armature, carrying the dance and the settings
that made it (stored_dance on the action). Auditioning a take makes it the armature's active action and its dance, so
Edit, Retarget, Export and Video work on the take being watched. Comp, keys and repeat only send constraints to the
backend (the assembled dance and its joins, the keyed poses, the repeat mode); the model dances the transitions.
"""

from __future__ import annotations

from dataclasses import replace

import bpy
import numpy as np

from . import compat, results, stored_dance

TAKE = "mace_dance_take"  # on a take's action: its number (1, 2, ...)


def take_actions(obj: bpy.types.Object) -> list[tuple[int, bpy.types.Action, bpy.types.NlaTrack]]:
    """The armature's takes as (number, action, NLA track), by number."""
    ad = obj.animation_data if obj is not None else None
    if ad is None:
        return []
    out = []
    for track in ad.nla_tracks:
        for strip in track.strips:
            action = strip.action
            if action is not None and TAKE in action.keys():
                out.append((int(action[TAKE]), action, track))
    return sorted(out, key=lambda t: t[0])


def _strip_slot(strip, action) -> None:
    """Layered actions (4.4+) play in an NLA strip through one of their slots: the one made for this armature."""
    if compat.layered_actions() and hasattr(strip, "action_slot") and len(action.slots) and strip.action_slot is None:
        strip.action_slot = action.slots[0]


def add_take(context, obj: bpy.types.Object, number: int, motion, settings: stored_dance.DanceSettings,
             beat_frames=None, sections=None) -> bpy.types.Action:
    """Bake `motion` as take `number` on `obj` (active now, stored on the action, and on a muted NLA track)."""
    context.view_layer.objects.active = obj
    results.apply_result(context, motion, beat_frames, settings=settings, sections=sections)
    action = obj.animation_data.action
    action.name = f"take {number}"
    action[TAKE] = number
    stored_dance.store(action, motion, settings)
    action.use_fake_user = True  # a take not playing is still kept in the saved file
    track = obj.animation_data.nla_tracks.new()
    track.name = f"Take {number} (seed {settings.seed})"
    strip = track.strips.new(f"Take {number}", int(settings.start_frame), action)
    _strip_slot(strip, action)
    track.mute = True
    return action


def audition(obj: bpy.types.Object, number: int) -> None:
    """Play take `number` on the armature (it becomes the active action and the armature's dance)."""
    for n, action, _track in take_actions(obj):
        if n == number:
            motion, settings = stored_dance.load(action)
            slot = action.slots[0] if compat.layered_actions() and len(action.slots) else None
            compat.assign_action(obj, action, slot)
            stored_dance.store(obj, motion, settings)
            return
    raise ValueError(f"{obj.name} has no take {number}")


def playing_take(obj: bpy.types.Object) -> int:
    """The number of the take playing now (0: none, e.g. after a comp)."""
    action = obj.animation_data.action if obj is not None and obj.animation_data else None
    return int(action[TAKE]) if action is not None and TAKE in action.keys() else 0


def _fail(op, text: str) -> set[str]:
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


def _dance_armature(op, context):
    """(armature, stored motion, settings) of the active object, or an error sentence."""
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        return None, "Select the SMPL armature first."
    if not stored_dance.has_dance(obj):
        return None, f"{obj.name} carries no MACE-Dance dance; generate one first."
    try:
        motion, settings = stored_dance.load(obj)
    except ValueError as exc:
        return None, str(exc)
    return (obj, motion, settings), ""


def _song(settings: stored_dance.DanceSettings, s) -> tuple[str, str]:
    """(absolute song path, problem sentence) for a stored dance (the panel's Song stands in for a moved file)."""
    from .operators import _song_problem

    path = bpy.path.abspath(settings.song) if settings.song else ""
    if _song_problem(path) and s.audio_path:
        path = bpy.path.abspath(s.audio_path)
    return path, _song_problem(path)


def _send(op, context, mode: str, obj, settings: stored_dance.DanceSettings, arrays: dict, **options) -> set[str]:
    """Send a comp, keys or repeat job about `obj`'s dance: its own song, section, beta, style and beat guidance,
    the panel's seed and steps; the timer applies the result by `mode`."""
    from . import jobs
    from .operators import _start, guidance_option

    s = context.scene.mace_dance
    path, problem = _song(settings, s)
    if problem:
        return _fail(op, problem)
    options = {"seed": s.seed, "steps": s.steps, "beta": settings.beta, "style": settings.style,
               **guidance_option(settings.beat_guidance), **_section(settings), **options}
    started = _start(op, context, path, options, arrays, settings=replace(settings, seed=s.seed),
                     edit_target=obj.name)
    if started == {"FINISHED"}:
        jobs.SESSION.mode = mode
    return started


def _section(settings: stored_dance.DanceSettings) -> dict:
    return {"start": settings.time_start, "end": settings.time_end} if settings.time_end > settings.time_start else {}


class DANCE_OT_takes(bpy.types.Operator):
    """Generate several takes (seeds) of the dance, each its own action on an NLA track of the same armature"""

    bl_idname = "dance.takes"
    bl_label = "Generate Takes"

    def execute(self, context):
        from bridge.client import edit_arrays

        from . import jobs
        from .operators import _song_problem, _start, guidance_option
        from .scene import motion_range

        s = context.scene.mace_dance
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        obj = context.active_object if context.active_object and context.active_object.type == "ARMATURE" else None
        arrays, edit = None, None
        if s.takes_range:  # takes of a passage: each regenerates the frame range, keeping the rest of the dance
            found, problem = _dance_armature(self, context)
            if problem:
                return _fail(self, problem)
            obj, motion, settings = found
            from .scene import scene_fps

            last = settings.start_frame + int(np.floor((motion.num_frames - 1) * scene_fps(context.scene) / 30.0))
            if not settings.start_frame <= s.edit_start <= s.edit_end <= last:
                return _fail(self, f"The take range {s.edit_start}-{s.edit_end} must lie inside the dance (frames "
                                   f"{settings.start_frame}-{last}).")
            a, b = motion_range(context.scene, settings.start_frame, s.edit_start, s.edit_end, motion.num_frames)
            edit = {"keep_frames": [[0, a], [b, motion.num_frames]], "ref_fps": motion.fps}
            arrays = edit_arrays(motion)
            path, problem = _song(settings, s)
        else:
            settings = stored_dance.DanceSettings(song=s.audio_path, seed=s.seed, beta=s.beta, steps=s.steps,
                                                  style=s.style, beat_sync=s.beat_sync, start_frame=s.start_frame,
                                                  beat_guidance=s.beat_guidance)
            if not s.whole_song:
                if s.time_end <= s.time_start:
                    return _fail(self, "The time range is empty: 'To' must be after 'From'.")
                settings.time_start, settings.time_end = s.time_start, s.time_end
            path = bpy.path.abspath(s.audio_path) if s.audio_path else ""
            problem = _song_problem(path)
        if problem:
            return _fail(self, problem)
        first = max([n for n, _, _ in take_actions(obj)], default=0) + 1 if obj is not None else 1
        options = {"beta": s.beta, "seed": s.seed, "steps": s.steps, "beat_sync": settings.beat_sync,
                   "style": settings.style, **guidance_option(settings.beat_guidance), **_section(settings)}
        if edit is not None:
            options.update(edit=edit, lock_feet=False)
        settings = replace(settings, seed=s.seed, beta=s.beta, steps=s.steps)
        started = _start(self, context, path, options, arrays, settings=settings, edit_target=obj.name if obj else "")
        if started == {"FINISHED"}:
            jobs.SESSION.mode = "takes"
            jobs.SESSION.takes_of_range = bool(s.takes_range)
            jobs.SESSION.take_number = first
            jobs.SESSION.pending_variants = [s.seed + k for k in range(1, s.takes)]
        return started


class DANCE_OT_audition_take(bpy.types.Operator):
    """Play this take on the armature (it becomes the dance that Edit, Retarget and Export use)"""

    bl_idname = "dance.audition_take"
    bl_label = "Audition Take"
    bl_options = {"REGISTER", "UNDO"}

    number: bpy.props.IntProperty(name="Take", min=1)

    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            return _fail(self, "Select the armature that carries the takes.")
        try:
            audition(obj, self.number)
        except ValueError as exc:
            return _fail(self, str(exc))
        return {"FINISHED"}


class DANCE_OT_mark_take(bpy.types.Operator):
    """Use the chosen take for the frame range From-To in the comp (later marks win where they overlap)"""

    bl_idname = "dance.mark_take"
    bl_label = "Use Take for Range"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.mace_dance
        if s.edit_end <= s.edit_start:
            return _fail(self, "The range is empty: 'To frame' must be after 'From frame'.")
        obj = context.active_object
        numbers = [n for n, _, _ in take_actions(obj)] if obj is not None else []
        if s.comp_take not in numbers:
            return _fail(self, f"There is no take {s.comp_take} on the selected armature (takes: "
                               f"{', '.join(map(str, numbers)) or 'none'}).")
        mark = s.comp_marks.add()
        mark.take, mark.frame_start, mark.frame_end = s.comp_take, s.edit_start, s.edit_end
        return {"FINISHED"}


class DANCE_OT_clear_marks(bpy.types.Operator):
    """Forget the comp's marked ranges"""

    bl_idname = "dance.clear_marks"
    bl_label = "Clear Marks"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.mace_dance.comp_marks.clear()
        return {"FINISHED"}


class DANCE_OT_comp(bpy.types.Operator):
    """Assemble the marked ranges of the takes into one dance; the model dances a short transition at each switch"""

    bl_idname = "dance.comp"
    bl_label = "Comp"

    def execute(self, context):
        from bridge.client import edit_arrays
        from rigs.splice import assemble

        from . import jobs
        from .core.choreo import comp_cuts
        from .scene import motion_range

        s = context.scene.mace_dance
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        obj = context.active_object
        takes = take_actions(obj) if obj is not None and obj.type == "ARMATURE" else []
        if len(takes) < 2:
            return _fail(self, "Select an armature with at least two takes (Generate Takes) to comp.")
        if not len(s.comp_marks):
            return _fail(self, "Mark at least one range with another take first (Use Take for Range).")
        try:
            loaded = {n: stored_dance.load(action) for n, action, _ in takes}
        except ValueError as exc:
            return _fail(self, str(exc))
        numbers = sorted(loaded)
        if s.comp_base not in loaded:
            return _fail(self, f"There is no take {s.comp_base} to comp from (takes: {', '.join(map(str, numbers))}).")
        settings = loaded[s.comp_base][1]
        for n, (m, other) in loaded.items():  # takes of one song and section, as Generate Takes makes them
            same = (other.song, other.time_start, other.time_end) == (settings.song, settings.time_start,
                                                                      settings.time_end)
            if not same or m.num_frames != loaded[s.comp_base][0].num_frames:
                return _fail(self, f"Take {n} was made for another song or section than take {s.comp_base}; "
                                   "comp takes of one song (one Generate Takes).")
        frames = loaded[s.comp_base][0].num_frames
        marks = []
        for mark in s.comp_marks:
            if mark.take not in loaded:
                return _fail(self, f"A mark uses take {mark.take}, which this armature does not have.")
            a, b = motion_range(context.scene, settings.start_frame, mark.frame_start, mark.frame_end, frames)
            marks.append((numbers.index(mark.take), a, b))
        try:
            cuts = comp_cuts(frames, numbers.index(s.comp_base), marks)
            reference, switches = assemble([loaded[n][0].slice(0, frames) for n in numbers], cuts)
        except ValueError as exc:
            return _fail(self, f"Cannot comp these marks: {exc}")
        if not switches:
            return _fail(self, "The marks use one take throughout; audition it instead of comping.")
        started = _send(self, context, "comp", obj, settings, edit_arrays(reference), lock_feet=False,
                        edit={"transitions": switches, "ref_fps": reference.fps})
        if started == {"FINISHED"}:
            jobs.SESSION.switches = list(switches)
        return started


class DANCE_OT_dance_through_keys(bpy.types.Operator):
    """Dance anew through the poses you keyed on the SMPL armature (whole body or the posed bones), on the beat"""

    bl_idname = "dance.through_keys"
    bl_label = "Dance Through Keys"

    def execute(self, context):
        from bridge.client import key_arrays

        from . import jobs
        from .core.choreo import posed_frames
        from .scene import read_smpl_motion, scene_fps

        s = context.scene.mace_dance
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        found, problem = _dance_armature(self, context)
        if problem:
            return _fail(self, problem)
        obj, motion, settings = found
        from .core.bake import is_smpl_rig
        from .scene import armature_rig, smpl_mapping

        rig = armature_rig(obj)
        if not is_smpl_rig(rig, smpl_mapping(rig)):
            return _fail(self, f"{obj.name} is not an SMPL armature: pose and key the SMPL dance (a retargeted "
                               "character's keys are not read back).")
        if obj.animation_data is None or obj.animation_data.action is None:
            return _fail(self, f"{obj.name} plays no action: audition a take or apply the dance first.")
        rate = scene_fps(context.scene)
        last = int(np.ceil(obj.animation_data.action.frame_range[1] - 1e-6))
        try:
            keys = read_smpl_motion(context, obj, settings.start_frame, last)
        except (ValueError, KeyError) as exc:
            return _fail(self, f"The keys on {obj.name} cannot be read: {exc}")
        frames, joints = posed_frames(keys, motion.resample(rate, cover=True))
        if not len(frames):
            return _fail(self, f"No pose on {obj.name} differs from its dance: pose the armature at a few frames, "
                               "key the bones (I), then Dance Through Keys.")
        if len(frames) > 64:
            return _fail(self, f"{len(frames)} frames differ from the dance; key a few poses (at most 64) instead "
                               "of changing whole passages (use Edit for that).")
        motion_frames = np.minimum(np.round(frames * 30.0 / rate).astype(np.int64), motion.num_frames - 1)
        if len(np.unique(motion_frames)) != len(motion_frames):
            return _fail(self, "Two keyed poses are less than a frame apart at 30 fps; keep one of them.")
        if s.keys_whole_body:
            joints = np.ones_like(joints)
        arrays = key_arrays(motion_frames, keys.rotations[frames], joints, keys.root_translation[frames])
        return _send(self, context, "keys", obj, settings, arrays, lock_feet=False,
                     keys={"snap_to_beats": bool(s.keys_on_beats)})


class DANCE_OT_repeat(bpy.types.Operator):
    """Make each repeated section of the song (A', ...) dance its first occurrence's phrase again"""

    bl_idname = "dance.repeat"
    bl_label = "Repeat Choreography"

    def execute(self, context):
        from bridge.client import edit_arrays

        from . import jobs

        s = context.scene.mace_dance
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        found, problem = _dance_armature(self, context)
        if problem:
            return _fail(self, problem)
        obj, motion, settings = found
        return _send(self, context, "repeat", obj, settings, edit_arrays(motion), fps=motion.fps,
                     repeat=s.repeat_mode.lower())


def apply_choreography_result(context, msg, motion, s) -> None:
    """Apply a takes/comp/keys/repeat result (called by the job timer with SESSION.mode set)."""
    from . import jobs

    session = jobs.SESSION
    target = bpy.data.objects.get(session.edit_target) if session.edit_target else None
    if session.edit_target and target is None:
        raise ValueError(f"the armature {session.edit_target} was deleted while the job ran")
    settings = session.settings or stored_dance.DanceSettings(start_frame=s.start_frame)
    if session.mode == "takes":
        if target is None:  # takes of a new dance: a new SMPL armature
            from .scene import create_smpl_armature

            target = create_smpl_armature(context)
            session.edit_target = target.name
        note = ""
        if session.variant == 0 and not session.takes_of_range:  # like Generate: beats, sections, the song
            settings.beat_frames = [float(b) for b in msg.get("beat_frames") or []]
            add_take(context, target, session.take_number, motion, settings, msg.get("beat_frames"),
                     msg.get("sections"))
            note = results.place_song(context, session.song, settings.start_frame) if s.add_sound else ""
        else:
            add_take(context, target, session.take_number, motion, settings)
        s.status = f"take {session.take_number} ready (seed {settings.seed})" + (f"; {note}" if note else "")
        session.take_number += 1
        return
    if session.mode == "repeat" and not msg.get("repeats"):
        s.status = "no section of this song repeats an earlier one; the dance is unchanged"
        return
    context.view_layer.objects.active = target
    results.apply_result(context, motion, settings=settings)
    action = target.animation_data.action
    action.name = session.mode  # "comp", "keys" or "repeat": the Action editor tells them apart
    if session.mode == "keys":
        from .scene import scene_fps

        landed = [int(f) for f in msg.get("key_frames") or []]
        rate = scene_fps(context.scene) / 30.0
        markers = context.scene.timeline_markers
        for old in [m for m in markers if m.name.startswith("key") and m.name[3:].isdigit()]:
            markers.remove(old)  # the keys of an earlier run are not where this dance passes through its poses
        for i, f in enumerate(landed):
            context.scene.timeline_markers.new(f"key{i + 1}", frame=int(round(settings.start_frame + f * rate)))
        s.status = f"danced through {len(landed)} keyed poses" + (" (on beats)" if s.keys_on_beats else "")
    elif session.mode == "repeat":
        repeats = msg.get("repeats")
        s.status = f"repeated {len(repeats)} section(s): " + ", ".join(str(r[3]) for r in repeats)
    else:
        s.status = f"comped {len(session.switches)} switch(es) with model-made transitions"
        s.comp_marks.clear()  # the marks were about these takes' frames; the comp is done


CLASSES = (DANCE_OT_takes, DANCE_OT_audition_take, DANCE_OT_mark_take, DANCE_OT_clear_marks, DANCE_OT_comp,
           DANCE_OT_dance_through_keys, DANCE_OT_repeat)
