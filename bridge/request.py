"""One dance request: every option a dance can be asked with, its default, range and one-sentence error, in one place.

The CLI's generate options are derived from the specs below (backend/cli/dance_options.py), the server's submit
schema checks a job's options with them (backend/server/schema.py), the Blender add-on builds its requests and panel
limits from them, and the pipeline (backend/motion/pipeline.py) reads the checked request. Adding an option is one
`option(...)` line here plus what the pipeline does with it.

On the wire a request is the bridge's `options` map (scalars as msgpack values, only those that differ from their
default, so a server from before an option still takes the job) and its arrays (the dance to edit, a root path,
keyed poses) as raw array frames.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np

from bridge.checks import OptionError

# The dance styles a model may be conditioned on; index 0, "auto", lets the model read the style off the music.
STYLES = ("auto", "cha-cha", "rumba", "tango", "waltz")
REPEAT_MODES = ("off", "same", "mirror")
MAX_FRAME = 10 ** 7  # frame numbers beyond this are an error (about 92 hours at 30 fps)
TRANSITION_HALF = 16  # frames regenerated on each side of a comp's join (0.53 s at 30 fps: about a beat)
FRAME_RATE = 30.0  # the music's (and every request frame number's) rate
SONG_END_SLACK = 0.05  # s: an end this far past the song's last sample is its end (a rounded frame time)


class RequestError(OptionError):
    """An option that cannot be danced: the message is one sentence naming it."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def style_key(name: str | None) -> str:
    """A style name as the model knows it ('Cha_Cha' -> 'cha-cha'); raises RequestError for an unknown one."""
    key = (name or "auto").strip().lower().replace("_", "-").replace("chacha", "cha-cha")
    if key not in STYLES:
        raise RequestError("style", f"unknown style {name!r}: choose one of {', '.join(STYLES)}")
    return key


# DDIM steps when a request leaves them to the pipeline. Pure generation: 12 score as well as 20 on the test songs
# (FID_k 98.6 vs 102.9, BAS 0.340 vs 0.331) in 60 % of the time, and 6 worse on val (FID_k 103.7 vs 90.7, Div_k 6.79
# vs 7.57, joint acceleration 2.49x vs 1.99x real). A dance built from the figure library (novelty 0) keeps the
# library's frames and the model dances only the joins: from noise, 6 steps scored as 12 on val (FID_k 123.5 vs
# 122.9, figure distance 0.114 vs 0.111 m, acceleration 1.27x both, BAS own/other 1.33x vs 1.31x) in 62 % of the time.
# Unedited, such a dance starts from the library's own dance noised to LIBRARY_START of the schedule (its joins the
# library's eased ones), not from noise: 2 or 3 steps from 0.4 score as 6 from pure noise on val (8 seed sets: FID_k
# 68.3 / 68.4 vs 69.3, Div_k 11.69 both vs 11.76, tempo lock own/other 1.97x both vs 1.99x) and its model-made joins
# move with 16-17 % less acceleration (8.5 / 8.4 vs 10.2 m/s^2), in a third of the passes (weights/me/README.md). New
# frames between kept ones (an edit's, keyed poses'), and a loop's, still start from noise (EDIT_STEPS); an edit that
# keeps something on every frame (kept joints, a path, a comp's joins) leaves no frame to the library: GENERATION_STEPS.
GENERATION_STEPS = 12
LIBRARY_STEPS, LIBRARY_START = 2, 0.4
EDIT_STEPS = 6


@dataclass(frozen=True)
class Spec:
    """How one scalar option is checked, shown and sent."""

    kind: str  # "number", "integer", "flag" or "choice"
    help: str  # the CLI's help text (also the add-on's tooltip)
    error: str = ""  # the sentence for a value out of range, formatted with {value}
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False
    off: float | None = None  # a value outside [low, high] that turns the option off (speed_limit 0)
    choices: tuple[str, ...] = ()
    normalise: Callable[[Any], Any] | None = None  # a choice's accepted spellings -> its canonical value
    optional: bool = False  # None is allowed (and is the default)
    flag: str | None = None  # the CLI flag; None: --name-with-dashes
    negatable: bool = True  # a flag option also gets --no-NAME
    wire: bool = True  # travels in a job's options (False: the client expands it, e.g. takes into several jobs)
    metavar: str | None = None  # what the CLI shows for the value (SECONDS, 0-1, ...); None: from the kind

    def in_range(self, value: float) -> bool:
        """Whether a number lies within the range (or is the 'off' value)."""
        if self.off is not None and value == self.off:
            return True
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


def option(default: Any, kind: str, help: str, **spec: Any) -> Any:
    """A DanceRequest field with its checking spec."""
    return field(default=default, metadata={"spec": Spec(kind, help, **spec)})


def _wire_type(name: str, spec: Spec, value: Any) -> Any:
    """`value` as the spec's type, or RequestError in the server schema's words (a client sent the wrong type)."""
    shown = repr(value)[:60]
    if value is None and spec.optional:
        return None
    if spec.kind == "flag":
        if not isinstance(value, bool):
            raise RequestError(name, f"option {name!r} must be true or false, got {shown}")
        return value
    if spec.kind == "choice":
        if not isinstance(value, str) or len(value) > 64:
            raise RequestError(name, f"option {name!r} must be a string of at most 64 characters, got {shown}")
        return value
    if spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise RequestError(name, f"option {name!r} must be a whole number, got {shown}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise RequestError(name, f"option {name!r} must be a finite number, got {shown}")
    return float(value)


def check_value(name: str, spec: Spec, value: Any) -> Any:
    """A value of any origin (CLI, wire, panel) checked against its spec: the canonical value or RequestError."""
    value = _wire_type(name, spec, value)
    if value is None:
        return None
    if spec.kind == "choice":
        if spec.normalise is not None:
            return spec.normalise(value)
        if value not in spec.choices:
            raise RequestError(name, spec.error.format(value=repr(value)))
        return value
    if spec.kind in ("number", "integer") and not spec.in_range(value):
        raise RequestError(name, spec.error.format(value=value))
    return value


@dataclass
class Edit:
    """What to keep of the dance being edited (frames at 30 fps of the music section) and a comp's joins."""

    keep_frames: list[tuple[int, int]] = field(default_factory=list)  # [first, stop) ranges kept
    keep_joints: list[str] = field(default_factory=list)  # joints whose rotations are kept throughout
    keep_root: bool = False  # with keep_joints: the root's path is kept too
    transitions: list[int] = field(default_factory=list)  # a comp's joins: all but the frames around each are kept
    transition_frames: int = TRANSITION_HALF  # frames regenerated on each side of a join

    @property
    def empty(self) -> bool:
        """Whether the edit asks for nothing."""
        return not (self.keep_frames or self.keep_joints or self.transitions)


@dataclass
class KeyedPoses:
    """Poses an animator keyed: frames (30 fps), local quaternions (K, 24, 4), keyed joints (K, 24), root (K, 3).

    Without `root` the poses are reached where a free dance of the same request stands at their frames."""

    frames: np.ndarray
    rotations: np.ndarray
    joints: np.ndarray | None = None  # default: every joint keyed
    root: np.ndarray | None = None
    snap_to_beats: bool = False  # move each key to its nearest music beat first


@dataclass
class DanceRequest:
    """Everything a dance can be asked with (the music itself travels beside it)."""

    start: float = option(0.0, "number", "Where the dance starts in the song, in seconds.", low=0.0,
                          metavar="SECONDS", error="the section must start at 0 s or later, got {value}")
    end: float | None = option(None, "number", "Where the dance ends in the song, in seconds; by default the "
                                               "song's end.", low=0.0, optional=True, metavar="SECONDS",
                               error="the section must end at 0 s or later, got {value}")
    # beta = 1 samples the model's own conditional distribution (one pass, no guidance); lower beta guides harder
    # (a CFG scale of 1/beta). Val songs, 4 x 2 dances, 12 steps: FID_k 112.7 / 104.5 / 93.3 / 96.8 / 108.8 at beta
    # 1 / 0.9 / 0.8 / 0.7 / 0.6 (weights/me/README.md).
    # What an animator sees (issue 33; the ragtime librosa example, 0-30 s, seeds 0 and 1, beta
    # 0.5 / 0.8 / 1): at novelty 0 mean joint speed 0.82/0.81/0.81 and 0.73/0.74/0.69 m/s, joints 4-6 cm (rms) from
    # the 0.8 dance, Div_k and figure distance within 4 %; at novelty 1 another beta is another dance (joints 10-22
    # cm apart), speed 0.64/0.70/0.66 and 0.79/0.82/0.76 m/s: 0.8 the quickest, no direction from 0.5 to 1.
    beta: float = option(0.8, "number", "How closely the dance follows the music (above 0, up to 1): 1 = the "
                                        "model's own take, smaller = held to the music harder (guidance: a CFG "
                                        "scale of 1/beta). It changes little you can see: from 0.5 to 1 joint speed "
                                        "moves by under 6 %, in no fixed direction (with --novelty 1 another value "
                                        "is simply another dance). 0.8 scored best on the val songs.",
                         low=0.0, low_open=True, high=1.0, metavar="0-1", error="beta must be in (0, 1], got {value}")
    # issue 30: the dance made of figures of the train dances (the figure library beside the weights,
    # backend/motion/retrieval.py) instead of invented from noise; 1 = pure generation as before. Val songs, 2 seeds,
    # raw: figure distance 0.109 / 0.162 / 0.166 / 0.169 / 0.200 m (real 0.072), joint acceleration 1.25 / 2.40 /
    # 2.35 / 2.25 / 2.00x real, Latin hands 0.73 / 0.57 / 0.54 / 0.50 / 0.21 of real at novelty 0 / 0.3 / 0.5 / 0.7 / 1
    # (weights/me/README.md)
    novelty: float = option(0.0, "number", "How much of the dance the model invents, 0-1: 0 = real dancers' "
                                           "figures from the figure library, the model dancing only the moves "
                                           "between them (the default: closest to real dancing on the val songs); "
                                           "1 = the model invents every move; between: the library's dance, "
                                           "reworked more the higher the value.",
                            low=0.0, high=1.0, metavar="0-1",
                            error="novelty must be a number from 0 (library figures) to 1 (pure generation), got "
                                  "{value}")
    seed: int = option(0, "integer", "Which variation: the same seed and options give the same dance, another seed "
                                     "another dance (from the figure library: other phrases and its own vigour, calm "
                                     "to lively).", low=0, high=2 ** 63 - 1, metavar="N",
                       error="the seed must be a whole number from 0 to 2^63-1, got {value}")
    # None: the pipeline's choice, LIBRARY_STEPS for a dance built from the figure library (EDIT_STEPS for new frames
    # between kept ones, keyed poses or a loop), GENERATION_STEPS otherwise
    steps: int | None = option(None, "integer", f"How many passes the model takes to refine the dance (DDIM steps): "
                                                f"more take longer and are rarely better. Default {LIBRARY_STEPS} "
                                                f"with the figure library (--novelty 0; {EDIT_STEPS} for new "
                                                f"frames between kept ones, keyed poses or a loop), "
                                                f"{GENERATION_STEPS} otherwise.",
                               low=1, high=1000, optional=True, metavar="N",
                               error="steps must be between 1 and 1000, got {value}")
    edit_guidance: float | None = option(None, "number", "Edits: how firmly the new part is steered to meet the "
                                                         "kept frames at its edges, so the joins do not jump (4 by "
                                                         "default; 0 = not steered, faster; reconstruction "
                                                         "guidance).",
                                         low=0.0, high=100.0, optional=True, metavar="WEIGHT",
                                         error="edit guidance (reconstruct) must be in [0, 100], got {value}")
    lock_feet: bool = option(True, "flag", "Pin a planted foot to the floor so it does not slide (--no-lock-feet: "
                                           "feet as generated, e.g. for edits that must keep exact values).")
    beat_sync: float = option(1.0, "number", "Retime the dance so its accents (the moments the body comes to rest) "
                                             "land on the music's beats, 0-1: 0 = timing as generated, 1 = each "
                                             "accent on its beat (not for edits and loops).",
                              low=0.0, high=1.0, metavar="0-1",
                              error="beat sync must be a number from 0 (off) to 1 (full), got {value}")
    loop: float = option(0.0, "number", "Make the dance a seamless loop (for games): its end blends into its start "
                                        "over this many seconds (e.g. 1; 0 = no loop).",
                         low=0.0, high=60.0, metavar="SECONDS",
                         error="the loop blend must be from 0 to 60 s, got {value}")
    in_place: bool = option(False, "flag", "Dance on the spot: the travel across the floor is taken off the body "
                                           "and kept apart (root_motion in dance.npz), as game engines want.",
                            flag="--in-place", negatable=False)
    style: str = option("auto", "choice", "Dance style: auto (the style the music suggests), cha-cha, rumba, "
                                          "tango or waltz.",
                        choices=STYLES, metavar="STYLE", normalise=style_key)
    repeat: str = option("off", "choice", "off, same or mirror: where the music repeats a part (A ... A'), same "
                                          "dances its steps again, mirror dances them with left and right swapped, "
                                          "each with new moves leading in and out (off: every part danced afresh).",
                         choices=REPEAT_MODES, metavar="MODE",
                         error="--repeat must be off, same or mirror, got {value}")
    # test songs, as shipped, raw: tempo lock own/other 2.27x, BAS 1.20x (weights/me/README)
    beat_guidance: float = option(8.0, "number", "How hard the dance's rhythm is pulled onto the song's beats while "
                                                 "it is made: the body's speed pulses every 2 or 3 beats and dips on "
                                                 "the beat (0 = the model's own timing; higher pulls harder).",
                                  low=0.0, high=100.0, metavar="WEIGHT",
                                  error="beat guidance must be in [0, 100], got {value}")
    # val songs, 48 dances: asked style recognised in 67 % at 0, 92 % at 1, 85 % at 3 (weights/me_styles/README)
    style_guidance: float = option(1.0, "number", "With --style: how hard the chosen style wins over the style "
                                                  "the music suggests (0 = not pushed, and faster; higher pushes "
                                                  "harder).",
                                   low=0.0, high=20.0, metavar="WEIGHT",
                                   error="style guidance must be in [0, 20], got {value}")
    # m/s; the real dances pass 8 on 0.2 % of frames
    speed_limit: float = option(7.5, "number", "The fastest a joint may move, in metres a second: a stretch that "
                                               "moves faster plays more slowly, the calm frames around it a little "
                                               "faster, so the song's length is kept (0 = no limit).",
                                low=1.0, high=100.0, off=0.0, metavar="M/S",
                                error="speed limit must be 0 (off) or in [1, 100] m/s, got {value}")
    takes: int = option(1, "integer", "Make this many different dances of the same music (seeds seed, seed+1, "
                                      "...) into OUT/take_1, OUT/take_2, ...; `mace-dance comp` joins their best "
                                      "parts.",
                        low=1, high=32, wire=False, metavar="N", error="--takes must be between 1 and 32, got {value}")
    # issue 33: the animator's word on the beat when the tracker's is wrong (backend/music/overrides.py)
    bpm: float | None = option(None, "number", "The song's tempo in beats a minute, when the one found is wrong "
                                               "(e.g. twice or half the real one): the beats are found again near "
                                               "it.",
                               low=30.0, high=300.0, optional=True, metavar="BPM",
                               error="--bpm must be from 30 to 300 beats per minute, got {value}")
    meter: int | None = option(None, "integer", "Beats a bar, 3 (waltz) or 4, when the one found is wrong.",
                               low=3, high=4, optional=True, metavar="3|4",
                               error="--meter must be 3 or 4 beats per bar, got {value}")
    downbeat: float | None = option(None, "number", "A time in the song, in seconds, where a bar starts, when the "
                                                    "bars found start on the wrong beat: bars are counted from the "
                                                    "beat nearest it.",
                                    low=0.0, optional=True, metavar="SECONDS",
                                    error="--downbeat must be a time in the song, 0 s or later, got {value}")
    # what to dance through or keep (arrays on the wire)
    reference: Any = None  # rigs.Motion: the dance to edit, comp or repeat
    edit: Edit | None = None
    path_xz: np.ndarray | None = None  # (N, 2) root path over the floor (m), resampled to the music's frames
    keys: KeyedPoses | None = None
    beat_map: np.ndarray | None = None  # (B,) beat times in the song (s), replacing the ones found

    def validate(self) -> "DanceRequest":
        """Every option checked (RequestError naming the first bad one); returns the request with canonical values."""
        values = {f.name: check_value(f.name, f.metadata["spec"], getattr(self, f.name))
                  for f in option_fields(type(self))}
        checked = replace(self, **values)
        checked._check_parts()
        return checked

    def _check_parts(self) -> None:
        if self.repeat != "off" and (self.keys is not None or self.path_xz is not None
                                     or (self.edit is not None and not self.edit.empty)):
            raise RequestError("repeat", "repeat makes repeated sections alike; it cannot be combined with an edit, "
                                         "a path or keyed poses in one dance (run it on its own, then edit the result)")
        if self.edit is not None:
            if self.edit.empty:
                raise RequestError("edit", "'edit' asks for nothing: give keep_frames, keep_joints, transitions or "
                                           "path")
            if self.reference is None:
                raise RequestError("edit", "this job needs the dance to edit or render: arrays 'ref_rotations' and "
                                           "'ref_root_translation'")
            for a, b in self.edit.keep_frames:
                if not 0 <= a <= MAX_FRAME or not 0 <= b <= MAX_FRAME:
                    raise RequestError("edit", f"kept frame ranges must lie in 0..{MAX_FRAME}, got [{a}, {b}]")
            if not 1 <= self.edit.transition_frames <= 300:
                raise RequestError("edit", f"transition_frames must be from 1 to 300, got "
                                           f"{self.edit.transition_frames}")
        if self.path_xz is not None:
            path = np.asarray(self.path_xz)
            if path.ndim != 2 or path.shape[1] != 2 or len(path) < 2 or not np.isfinite(path).all():
                raise RequestError("path", "a root path needs at least two rows of two finite numbers (x, z in "
                                           "metres)")

    def section_in(self, song_seconds: float) -> tuple[float, float]:
        """The section (start, end) in s of a song lasting `song_seconds`; RequestError when it lies outside it."""
        end = song_seconds if self.end is None else float(self.end)
        if self.start >= song_seconds:
            raise RequestError("start", f"the section starts at {self.start:g} s but the song lasts only "
                                        f"{song_seconds:.1f} s")
        if end > song_seconds + SONG_END_SLACK:
            raise RequestError("end", f"the section ends at {end:g} s but the song lasts only {song_seconds:.1f} s "
                                      f"(leave --end out to dance to its end)")
        end = min(end, song_seconds)
        if end - self.start < 2.0 / FRAME_RATE:
            raise RequestError("end", f"the section {self.start:g}..{end:g} s is empty: the end must come after "
                                      f"the start")
        return float(self.start), float(end)

    def check_length(self, seconds: float) -> None:
        """The options that depend on the section's length (`seconds` of music) checked against it: a loop's blend,
        an edit's kept ranges, keyed poses, the downbeat and beat map (RequestError in seconds, the units they were
        asked in)."""
        frames = int(round(seconds * FRAME_RATE))
        if self.loop > 0 and 2 * self.loop > seconds:
            raise RequestError("loop", f"the loop blend ({self.loop:g} s) must be at most half the dance: this "
                                       f"section lasts {seconds:.1f} s, so at most {seconds / 2:.1f} s")
        if self.edit is not None:
            late = [a for a, _ in self.edit.keep_frames if frames < a < MAX_FRAME]
            if late:
                raise RequestError("edit", f"the edit's range to regenerate runs to {min(late) / FRAME_RATE:.2f} s, "
                                           f"past the end of the section ({seconds:.2f} s long)")
        if self.downbeat is not None and not self.start <= self.downbeat <= self.start + seconds:
            raise RequestError("downbeat", f"--downbeat {self.downbeat:g} lies outside the section ({self.start:g} "
                                           f"to {self.start + seconds:.2f} s)")
        if self.beat_map is not None:
            times = np.asarray(self.beat_map, dtype=np.float64).reshape(-1)
            inside = times[(times >= self.start) & (times < self.start + seconds)]
            if not np.isfinite(times).all() or len(inside) < 2:
                raise RequestError("beat_map", f"the beat map needs at least two finite beat times inside the section "
                                               f"({self.start:g} to {self.start + seconds:.2f} s), got {len(inside)}")
        if self.keys is not None:
            key_frames = np.asarray(self.keys.frames).reshape(-1)
            late = key_frames[(key_frames < 0) | (key_frames >= frames)] if key_frames.dtype.kind in "iu" else []
            if len(late):
                shown = ", ".join(f"{f / FRAME_RATE:.2f}" for f in late[:5])
                raise RequestError("keys", f"keyed poses at {shown} s lie outside the section (0 to "
                                           f"{(frames - 1) / FRAME_RATE:.2f} s)")

    def each_take(self) -> list["DanceRequest"]:
        """One request per take: seeds seed, seed+1, ... (a job makes one take)."""
        return [replace(self, seed=self.seed + k, takes=1) for k in range(self.takes)]

    @property
    def edited(self) -> bool:
        """Whether kept values constrain the dance (an edit, a comp, a path or keyed poses)."""
        return self.edit is not None or self.path_xz is not None or self.keys is not None


def option_fields(cls: type = None) -> list:
    """The dataclass fields of DanceRequest (or a subclass) that carry a Spec: the scalar options."""
    return [f for f in fields(cls or DanceRequest) if "spec" in f.metadata]


def spec_of(name: str) -> Spec:
    """The spec of one scalar option."""
    for f in option_fields():
        if f.name == name:
            return f.metadata["spec"]
    raise KeyError(name)


def default_of(name: str) -> Any:
    """The default of one scalar option."""
    for f in fields(DanceRequest):
        if f.name == name:
            return None if f.default is MISSING else f.default
    raise KeyError(name)
