"""Takes of a dance on one armature: each its own action on a muted NLA track, carrying its dance and settings."""

from __future__ import annotations

import bpy

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
    compat.strip_slot(strip, action)
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
