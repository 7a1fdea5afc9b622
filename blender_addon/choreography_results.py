"""What a takes, comp, keys or repeat job's result does to the scene (the job timer calls it)."""

from __future__ import annotations

import bpy

from . import results, stored_dance
from .takes import add_take

def apply_choreography_result(context, msg, motion, s, session) -> None:
    """Apply a takes/comp/keys/repeat result (called by the job timer with `session.mode` set: jobs.SESSION)."""
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
            note = results.place_song(context, session.song, settings.start_frame, settings.time_start,
                                      settings.time_end) if s.add_sound else ""
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
