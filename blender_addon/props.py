"""Scene settings of the Dance panel and the add-on preferences."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from bridge.request import STYLES, default_of, spec_of


class CompMark(bpy.types.PropertyGroup):
    """One range of the comp danced by a chosen take (scene frames)."""

    take: IntProperty(name="Take", default=1, min=1)
    frame_start: IntProperty(name="From")
    frame_end: IntProperty(name="To")


class DanceSettings(bpy.types.PropertyGroup):
    """What the animator picks in the panel."""

    audio_path: StringProperty(name="Song", subtype="FILE_PATH", description="Audio file (wav, flac, ogg, mp3)")
    start_frame: IntProperty(name="Start frame", default=1, description="Scene frame where the dance and song start")
    whole_song: BoolProperty(name="Whole song", default=True)
    time_start: FloatProperty(name="From (s)", default=0.0, min=0.0)
    time_end: FloatProperty(name="To (s)", default=30.0, min=0.1)
    beta: FloatProperty(name="Guidance beta", default=default_of("beta"), min=0.05, max=spec_of("beta").high,
                        description=spec_of("beta").help.replace("--novelty", "Novelty"))
    novelty: FloatProperty(name="Novelty", default=default_of("novelty"), min=spec_of("novelty").low,
                           max=spec_of("novelty").high,
                           description="0 = figures of real dances (the figure library beside the weights), the "
                                       "model dancing only the joins; 1 = the model invents every move")
    seed: IntProperty(name="Seed", default=default_of("seed"), min=0)
    variants: IntProperty(name="Variants", default=1, min=1, max=8)
    steps: IntProperty(name="Steps", default=0, min=0, max=200,
                       description="Denoising steps (0: the backend's choice: 2 for a dance built from the figure "
                                   "library at novelty 0, 6 when it is edited, 12 otherwise)")
    beat_sync: FloatProperty(name="Beat sync", default=default_of("beat_sync"), min=spec_of("beat_sync").low,
                             max=spec_of("beat_sync").high, subtype="FACTOR",
                             description="Retime the dance so its accents land on the music's beats (0 = as sampled)")
    style: EnumProperty(name="Style", default=default_of("style"), description="Dance style (models trained with styles)",
                        items=[(name, name.capitalize(), "The style the music suggests" if name == "auto" else "")
                               for name in STYLES])
    beat_guidance: FloatProperty(name="Beat guidance", default=default_of("beat_guidance"), min=0.0, max=30.0,
                                 description="How hard the sampler pulls the dance's rhythm onto the song's beats "
                                             "(0: the model's own timing)")
    beat_markers: BoolProperty(name="Beat markers", default=True,
                               description="Put the song's beats on the timeline as markers beat1, beat2, ... "
                                           "(replacing the previous dance's)")
    # the animator's word on the beat when the tracker's is wrong (bridge.request: bpm, meter, downbeat, beat_map)
    bpm: FloatProperty(name="BPM", default=0.0, min=0.0, max=spec_of("bpm").high, precision=1,
                       description="0: found from the song. " + spec_of("bpm").help)
    meter: EnumProperty(name="Meter", default="AUTO", description=spec_of("meter").help, items=[
        ("AUTO", "Auto", "Beats per bar found from the song"), ("3", "3/4", "Three beats a bar (waltz)"),
        ("4", "4/4", "Four beats a bar")])
    use_downbeat: BoolProperty(name="Downbeat", default=False, description="Say where a bar starts")
    downbeat: FloatProperty(name="Downbeat (s)", default=0.0, min=spec_of("downbeat").low, precision=3,
                            description=spec_of("downbeat").help)
    use_beat_markers: BoolProperty(name="Use my beat markers", default=False,
                                   description="Dance to the beat markers on the timeline (beat1, beat2, ..., as "
                                               "you have moved them) instead of the beats found in the song")
    add_sound: BoolProperty(name="Add song to timeline", default=True)
    # editing an existing dance
    edit_mode: EnumProperty(name="Edit", items=[
        ("RANGE", "Regenerate range", "Dance anew between the two frames; keep everything else"),
        ("KEEP_RANGE", "Keep range", "Keep the frames between the two frames; dance anew around them"),
        ("BONES", "Keep selected bones", "Keep the selected bones' motion; regenerate the rest of the body"),
        ("PATH", "Follow path", "Dance along the chosen curve (root path over the floor)")], default="RANGE")
    edit_start: IntProperty(name="From frame", default=1)
    edit_end: IntProperty(name="To frame", default=60)
    path_object: PointerProperty(name="Path", type=bpy.types.Object,
                                 poll=lambda self, obj: obj.type == "CURVE")
    reference_image: StringProperty(name="Performer image", subtype="FILE_PATH",
                                    description="Photo of the person who should perform the dance on video")
    video_steps: IntProperty(name="Video steps", default=20, min=1, max=100)
    video_folder: StringProperty(name="Video folder", subtype="DIR_PATH",
                                 description="Where frames are written (default: beside the .blend file)")
    dance_armature: PointerProperty(name="Dance", type=bpy.types.Object,
                                    description="The armature carrying the latest dance (Retarget and Video use it)",
                                    poll=lambda self, obj: obj.type == "ARMATURE")
    # choreography: takes and comping, keyed poses, repeats
    takes: IntProperty(name="Takes", default=3, min=1, max=8, description="How many takes (seeds from Seed on)")
    takes_range: BoolProperty(name="Only the range", default=False,
                              description="Takes regenerate only From frame-To frame of the selected dance")
    comp_take: IntProperty(name="Take", default=2, min=1, description="The take to use for the range")
    comp_base: IntProperty(name="Elsewhere", default=1, min=1, description="The take danced outside the marked ranges")
    comp_marks: CollectionProperty(type=CompMark)
    keys_whole_body: BoolProperty(name="Whole body", default=False,
                                  description="Keep the whole keyed pose (off: only the bones you posed)")
    keys_on_beats: BoolProperty(name="Keys on beats", default=True,
                                description="Move each keyed pose to the nearest music beat first")
    repeat_mode: EnumProperty(name="Repeat", default="SAME", items=[
        ("SAME", "Same", "A repeated section dances its first occurrence's phrase again"),
        ("MIRROR", "Mirrored", "... with left and right swapped")])
    # job state shown in the panel (written by the timer)
    job: StringProperty(name="Job", default="")
    status: StringProperty(name="Status", default="")
    failed: BoolProperty(name="Failed", default=False, description="The status line reports a failure")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")


class DancePreferences(bpy.types.AddonPreferences):
    """Where the backend runs."""

    bl_idname = __package__

    mode: EnumProperty(name="Backend", items=[("LOCAL", "Local", "Start the backend on this computer (loopback)"),
                                             ("REMOTE", "Remote", "Use a running `mace-dance serve`")], default="LOCAL")
    python: StringProperty(name="Backend Python", subtype="FILE_PATH",
                           description="Python of the environment where mace-dance is installed (Local mode)")
    endpoint: StringProperty(name="Address", default="tcp://127.0.0.1:5555")
    smpl_model_file: StringProperty(name="SMPL model (.npz)", subtype="FILE_PATH",
                                    description="Your own SMPL model file: new armatures get the real SMPL mesh")
    server_key: StringProperty(name="Server public key", default="", description="CURVE key for remote servers")
    client_key_file: StringProperty(name="Your key file", subtype="FILE_PATH",
                                    description="Your .key_secret from `mace-dance keys` (on the server's allow-list)")

    def draw(self, context) -> None:
        layout = self.layout
        layout.prop(self, "smpl_model_file")
        layout.prop(self, "mode", expand=True)
        if self.mode == "LOCAL":
            layout.prop(self, "python")
        else:
            layout.prop(self, "endpoint")
            layout.prop(self, "server_key")
            layout.prop(self, "client_key_file")


CLASSES = (CompMark, DanceSettings, DancePreferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.mace_dance = PointerProperty(type=DanceSettings)


def unregister() -> None:
    del bpy.types.Scene.mace_dance
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
