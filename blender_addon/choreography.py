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

from bridge.request import Edit, KeyedPoses

from . import jobs, stored_dance
from .launch import fail as _fail, game_options, panel_settings, section, song_problem, start_dance
from .takes import audition, take_actions

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
    path = bpy.path.abspath(settings.song) if settings.song else ""
    if song_problem(path) and s.audio_path:
        path = bpy.path.abspath(s.audio_path)
    return path, song_problem(path)


def _send(op, context, mode: str, obj, settings: stored_dance.DanceSettings, **request) -> set[str]:
    """Send a comp, keys or repeat job about `obj`'s dance: its own song, section, beta, style and beat guidance,
    the panel's seed and steps; the timer applies the result by `mode`."""
    s = context.scene.mace_dance
    path, problem = _song(settings, s)
    if problem:
        return _fail(op, problem)
    started = start_dance(op, context, path, replace(settings, seed=s.seed), obj.name, seed=s.seed, steps=s.steps,
                          beta=settings.beta, style=settings.style, beat_guidance=settings.beat_guidance,
                          novelty=settings.novelty, **section(settings), **game_options(settings, editing=True),
                          **request)
    if started == {"FINISHED"}:
        jobs.SESSION.mode = mode
    return started


class DANCE_OT_takes(bpy.types.Operator):
    """Generate several takes (seeds) of the dance, each its own action on an NLA track of the same armature"""

    bl_idname = "dance.takes"
    bl_label = "Generate Takes"

    def execute(self, context):
        from .scene import motion_range

        s = context.scene.mace_dance
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        obj = context.active_object if context.active_object and context.active_object.type == "ARMATURE" else None
        passage = {}
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
            passage = {"edit": Edit(keep_frames=[(0, a), (b, motion.num_frames)]), "reference": motion,
                       "lock_feet": False}
            path, problem = _song(settings, s)
        else:
            if not s.whole_song and s.time_end <= s.time_start:
                return _fail(self, "The time range is empty: 'To' must be after 'From'.")
            settings = panel_settings(context)
            path = bpy.path.abspath(s.audio_path) if s.audio_path else ""
            problem = song_problem(path)
        if problem:
            return _fail(self, problem)
        first = max([n for n, _, _ in take_actions(obj)], default=0) + 1 if obj is not None else 1
        settings = replace(settings, seed=s.seed, beta=s.beta, steps=s.steps)
        started = start_dance(self, context, path, settings, obj.name if obj else "", beta=s.beta, seed=s.seed,
                              steps=s.steps, beat_sync=settings.beat_sync, style=settings.style,
                              beat_guidance=settings.beat_guidance, novelty=settings.novelty, **section(settings),
                              **game_options(settings, editing=bool(passage)), **passage)
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
        from rigs.splice import assemble

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
        started = _send(self, context, "comp", obj, settings, reference=reference, lock_feet=False,
                        edit=Edit(transitions=list(switches)))
        if started == {"FINISHED"}:
            jobs.SESSION.switches = list(switches)
        return started


class DANCE_OT_dance_through_keys(bpy.types.Operator):
    """Dance anew through the poses you keyed on the SMPL armature (whole body or the posed bones), on the beat"""

    bl_idname = "dance.through_keys"
    bl_label = "Dance Through Keys"

    def execute(self, context):
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
        keyed = KeyedPoses(motion_frames.astype(np.int64), np.asarray(keys.rotations[frames], np.float32),
                           np.asarray(joints, bool), np.asarray(keys.root_translation[frames], np.float32),
                           snap_to_beats=bool(s.keys_on_beats))
        # the dance itself goes along: only the frames around each key are danced anew (backend constraints.around_keys)
        return _send(self, context, "keys", obj, settings, keys=keyed, reference=motion, lock_feet=False)


class DANCE_OT_repeat(bpy.types.Operator):
    """Make each repeated section of the song (A', ...) dance its first occurrence's phrase again"""

    bl_idname = "dance.repeat"
    bl_label = "Repeat Choreography"

    def execute(self, context):
        s = context.scene.mace_dance
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        found, problem = _dance_armature(self, context)
        if problem:
            return _fail(self, problem)
        obj, motion, settings = found
        return _send(self, context, "repeat", obj, settings, reference=motion,
                     repeat=s.repeat_mode.lower())


CLASSES = (DANCE_OT_takes, DANCE_OT_audition_take, DANCE_OT_mark_take, DANCE_OT_clear_marks, DANCE_OT_comp,
           DANCE_OT_dance_through_keys, DANCE_OT_repeat)
