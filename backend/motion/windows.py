"""Training windows drawn on the fly: a clip, a tempo, a start, maybe the mirror image; music and dance together.

Tempo augmentation (issue 12): a window plays a stretch of the source at rate r (0.8-1.25x): output frame i is source
frame s + i * r for the dance (slerp) and the music inputs alike, the beat grid is mapped with it and the tempo column
moves by log2(r). Time-stretching music keeps its pitch and timbre, so interpolating the per-frame librosa columns in
time is what stretching the audio would give them (up to the analysis window). With only one tempo per song in the
data, a model could learn each style's speed and never listen; stretched pairs make the music's tempo the only way
to know how fast to dance.

Disguise (issue 12): with a few dozen songs a model can tell its train songs apart by their timbre and key, and learn a
dance's styling as belonging to its recording; a new song of the same style then gets the majority's dance. A window's
music is disguised as another recording of itself: transposed (the chroma columns rolled), played through a different
equaliser (a smooth gain curve over the mel bands, which adds its DCT to the MFCCs and leaves the onset envelope, a sum
of log-mel differences, as it was; exact but for bands under power_to_db's 80-dB floor), and now and then without its
timbre or pitch columns at all. Since a model also tells its songs apart by pitch content that a column roll cannot
fake, a window can instead hear another recording of its song, re-rendered and analysed anew
(backend.data.audio_variants), or be set to another stretch of its own song, beat on beat (cross_pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.motion.conditioning import STYLES, music_inputs
from backend.motion.representation import Normalizer, canonicalize, mirror, motion_to_features
from backend.music.features import BEATS, CHROMA, FEATURE_DIM, MFCC, N_CHROMA, N_MFCC, ONSET_PEAKS
from backend.music.rhythm import beat_curve

_PHASE_PAIRS = ((0, 1), (2, 3))  # (sin, cos) column pairs inside the rhythm block
_CURVE, _TEMPO = 4, 5
_N_MELS = 128  # the log-mel bands the MFCCs are the DCT of (backend.music.features)


@dataclass
class AugmentConfig:
    """How windows are varied: tempo, mirror images, style dropout, dances crossed onto other songs, disguised music."""

    tempo_min: float = 0.8
    tempo_max: float = 1.25
    p_stretch: float = 0.7  # the rest play at the recorded tempo
    mirror: bool = True
    p_style_drop: float = 0.3  # windows trained as style "auto", so generation without a style still works
    p_cross_style: float = 0.0  # windows whose dance is set to another style's song, beat on beat (see cross_pair)
    cross_rate_max: float = 1.5  # the most a crossed dance is sped up (or 1 / it, slowed down) to meet the song
    p_cross_song: float = 0.0  # windows whose dance is set to another song of its own style, beat on beat
    p_cross_place: float = 0.0  # windows whose dance is set to another stretch of its own song, beat on beat
    p_disguise: float = 0.0  # windows whose music is transposed and re-equalised (see disguise_music)
    eq_db: float = 6.0  # std of the equaliser's gain curve terms, dB (overall level; tilt and bumps at half of it)
    p_drop_block: float = 0.0  # per disguised window, the chance its MFCC (and, apart, its chroma) block is blanked
    p_variant: float = 0.0  # windows that hear another recording of their song (backend.data.audio_variants)


def disguise_music(inputs: np.ndarray, rng: np.random.Generator, eq_db: float, p_drop_block: float,
                   mean: np.ndarray) -> np.ndarray:
    """Music inputs (T, D) as another recording of the same music: transposed, re-equalised, maybe blanked.

    The equaliser is a gain curve g over the mel bands, a sum of the first four cosines of the bands' DCT with random
    weights (a level, a tilt, two bumps); the MFCCs are the orthonormal DCT-II of the log-mel bands, so g adds its
    DCT, here exactly those four coefficients, to every frame. Blanked blocks take `mean`, the normaliser's mean,
    which the model sees as zeros.
    """
    from scipy.fft import dct

    out = np.array(inputs, dtype=np.float32, copy=True)
    out[:, CHROMA] = np.roll(out[:, CHROMA], int(rng.integers(N_CHROMA)), axis=1)
    m = (np.arange(_N_MELS) + 0.5) / _N_MELS
    weights = rng.normal(0.0, eq_db, 4) * np.array([1.0, 0.5, 0.5, 0.5])
    gain = sum(w * np.cos(np.pi * j * m) for j, w in enumerate(weights))
    out[:, MFCC] += dct(gain, type=2, norm="ortho")[:N_MFCC].astype(np.float32)
    if rng.random() < p_drop_block:
        out[:, MFCC] = mean[MFCC]
    if rng.random() < p_drop_block:
        out[:, CHROMA] = mean[CHROMA]
    return out


def stretch_music(inputs: np.ndarray, beat_frames: np.ndarray, onset_frames: np.ndarray, src: np.ndarray,
                  rate: float, rhythm: bool) -> np.ndarray:
    """Music inputs (T, D) resampled at fractional source frames `src` (spaced by `rate`), beat columns rebuilt."""
    T = len(inputs)
    i0 = np.clip(np.floor(src).astype(int), 0, T - 1)
    i1 = np.clip(i0 + 1, 0, T - 1)
    w = (src - i0)[:, None].astype(np.float32)
    out = inputs[i0] * (1 - w) + inputs[i1] * w
    n = len(src)

    def mapped(frames: np.ndarray, margin: int = 0) -> np.ndarray:
        f = np.round((np.asarray(frames, dtype=np.float64) - src[0]) / rate).astype(int)
        return f[(f >= -margin) & (f < n + margin)]

    out[:, ONSET_PEAKS] = 0.0
    out[:, BEATS] = 0.0
    out[mapped(onset_frames), ONSET_PEAKS] = 1.0
    out[mapped(beat_frames), BEATS] = 1.0
    if rhythm:
        r = FEATURE_DIM
        for s, c in _PHASE_PAIRS:  # interpolated unit vectors: back onto the circle
            norm = np.hypot(out[:, r + s], out[:, r + c])
            ok = norm > 1e-6
            out[ok, r + s] /= norm[ok]
            out[ok, r + c] /= norm[ok]
        beats = mapped(beat_frames, margin=8)
        out[:, r + _CURVE] = beat_curve(beats, n) if len(beats) else 0.0
        has_grid = np.abs(out[:, r]) + np.abs(out[:, r + 1]) > 0
        out[has_grid, r + _TEMPO] += np.log2(rate)
    return out.astype(np.float32)


def cross_timing(dance_beats: np.ndarray, dance_frames: int, song_beats: np.ndarray, song_start: int, window: int,
                 rate_max: float, rng: np.random.Generator) -> np.ndarray | None:
    """Source frames (window,) of a dance re-timed onto song frames [song_start, song_start + window), beat on beat.

    The dance plays at rate r = its beat period / the song's (or half or double the song's, whichever r is nearest
    1); one of its beats, drawn at random among those that keep the window inside the dance, lands on the song's
    first beat in the window. None when r would pass `rate_max` (or 1 / it), or nothing fits.
    """
    if len(dance_beats) < 3 or len(song_beats) < 3:
        return None
    p_dance = float(np.median(np.diff(dance_beats)))
    p_song = float(np.median(np.diff(song_beats)))
    rate = min((p_dance / (p_song * mult) for mult in (0.5, 1.0, 2.0)), key=lambda r: abs(np.log(r)))
    if abs(np.log(rate)) > np.log(rate_max):
        return None
    inside = song_beats[(song_beats >= song_start) & (song_beats < song_start + window)]
    if not len(inside):
        return None
    offset = float(inside[0] - song_start)  # the output frame a dance beat must land on
    starts = np.asarray(dance_beats, dtype=np.float64) - offset * rate
    starts = starts[(starts >= 0) & (starts <= dance_frames - 1 - (window - 1) * rate)]
    if not len(starts):
        return None
    return float(starts[int(rng.integers(len(starts)))]) + np.arange(window) * rate


class WindowSampler:
    """Draws batches of normalised (motion, music, style) windows from clips, with tempo and mirror augmentation."""

    def __init__(self, clips, window: int, normalizer: Normalizer, rhythm: bool, augment: AugmentConfig | None,
                 styles: bool, balance: bool | None = None, variants: dict | None = None):
        """`variants`: clip name -> MusicFeatures of other recordings of its song, frame for frame (heard by a share
        `augment.p_variant` of the windows)."""
        self.clips = [c for c in clips if c.motion.num_frames > window * (augment.tempo_max if augment else 1) + 2]
        if not self.clips:
            raise ValueError(f"no clip is long enough for {window}-frame windows")
        self.window, self.normalizer, self.rhythm = window, normalizer, rhythm
        self.augment = augment
        self.styles = styles
        # per clip: (music, model inputs) of the original recording first, then of each variant
        variants = variants or {}
        self.recordings = [[(m, music_inputs(m, rhythm)) for m in [c.music, *variants.get(getattr(c, "name", ""), [])]]
                           for c in self.clips]
        for c, recs in zip(self.clips, self.recordings):
            if any(m.num_frames != c.music.num_frames for m, _ in recs):
                raise ValueError(f"{c.name}: an audio variant's frames do not match the dance's")
        frames = np.array([c.motion.num_frames for c in self.clips], dtype=np.float64)
        # Frames of rare styles are drawn more often (style share ~ sqrt of its frames, not its frames): waltz is
        # 61 % of the data, tango one dance, and a style condition needs every style seen often enough to learn it.
        # `balance` (default: with a style condition) does the same for a model without one, whose dances on a song
        # of a rare style otherwise come out as the common style's (a rumba song danced with a waltz's travel).
        per_style: dict[str, float] = {}
        for c, f in zip(self.clips, frames):
            per_style[_style(c)] = per_style.get(_style(c), 0.0) + f
        balance = styles if balance is None else balance
        w = frames / np.sqrt([per_style[_style(c)] for c in self.clips]) if balance else frames
        self.weights = w / w.sum()

    def draw_one(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        """One (motion (W, 151), music (W, D)) pair, unnormalised, and its style index."""
        k = int(rng.choice(len(self.clips), p=self.weights))
        aug = self.augment
        pair = None
        if aug is not None and self.styles and aug.p_cross_style > 0 and rng.random() < aug.p_cross_style:
            pair = self.cross_pair(rng, k)
        if pair is None and aug is not None and aug.p_cross_song > 0 and rng.random() < aug.p_cross_song:
            pair = self.cross_pair(rng, k, same_style=True)
        if pair is None and aug is not None and aug.p_cross_place > 0 and rng.random() < aug.p_cross_place:
            pair = self.cross_pair(rng, k, same_song=True)
        motion, music, style = pair if pair is not None else self._own_pair(rng, k)
        if aug is not None and aug.p_disguise > 0 and rng.random() < aug.p_disguise:
            music = disguise_music(music, rng, aug.eq_db, aug.p_drop_block, self.normalizer.music_mean)
        return motion, music, style

    def recording(self, rng: np.random.Generator, k: int) -> tuple:
        """Clip k's music and inputs as one of its recordings: a variant with chance p_variant, else the original."""
        recs = self.recordings[k]
        if len(recs) > 1 and self.augment is not None and rng.random() < self.augment.p_variant:
            return recs[1 + int(rng.integers(len(recs) - 1))]
        return recs[0]

    def _own_pair(self, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Clip k's dance on its own song: a stretch at a random tempo, maybe mirrored, maybe labelled auto."""
        clip, aug, W = self.clips[k], self.augment, self.window
        rate = 1.0
        if aug is not None and rng.random() < aug.p_stretch:
            rate = float(np.exp(rng.uniform(np.log(aug.tempo_min), np.log(aug.tempo_max))))
        span = (W - 1) * rate
        start = rng.uniform(0.0, clip.motion.num_frames - 1 - span)
        if rate == 1.0:
            start = float(np.floor(start))
        src = start + np.arange(W) * rate
        piece = clip.motion.at_times(src) if rate != 1.0 else clip.motion.slice(int(start), int(start) + W)
        if aug is not None and aug.mirror and rng.random() < 0.5:
            piece = mirror(piece)
        motion = motion_to_features(canonicalize(piece))
        heard, inputs = self.recording(rng, k)
        music = stretch_music(inputs, heard.beat_frames, heard.onset_frames, src, rate, self.rhythm)
        style = STYLES.index(_style(clip)) if self.styles and _style(clip) in STYLES else 0
        if aug is not None and rng.random() < aug.p_style_drop:
            style = 0
        return motion, music, style

    def cross_pair(self, rng: np.random.Generator, k: int, same_style: bool = False,
                   same_song: bool = False) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Clip k's dance on the song of a clip of another style (or its own), re-timed beat on beat onto that song.

        Each song here has one style, so a model can read the style off the music and ignore the style condition
        (asked for a cha-cha on a waltz, it dances the waltz). Crossed pairs break that link without teaching it to
        ignore the music: the dance is played at rate r so its beat period becomes the song's (or half or double
        it, whichever needs the least change), and shifted so one of its beats lands on one of the song's. The
        style label is the dance's, never dropped (a crossed pair labelled auto would teach the wrong dance for
        the song). None when no other-style song lies within the rate limit or no beat fits the window.

        With `same_style`, on another song of its own style instead (the style label dropped as for any window):
        with one dance per recording, a model learns a dance's styling (a cha-cha's arms) as belonging to its
        recording and gives a new song of the style the majority's quiet arms; a dance also heard on its style's
        other songs belongs to the style's music.

        With `same_song`, on another stretch of its own song: a 5-s window of a train song tells the model where in
        the song it is, and with one dance per song it can answer with that very stretch of the dance; a stretch
        heard under other parts of the dance has to be danced from what the music is like, not where it is.
        """
        clip, W, aug = self.clips[k], self.window, self.augment
        same_style = same_style or same_song
        others = [m for m, c in enumerate(self.clips) if (m == k) == same_song
                  and (_style(c) == _style(clip)) == same_style]
        if not others or (_style(clip) not in STYLES and not same_song):
            return None  # a dance of no known style has no label to carry onto another song
        m = others[int(rng.integers(len(others)))]
        song = self.clips[m]
        if song.music.num_frames < W:
            return None
        start_m = int(rng.integers(0, song.music.num_frames - W + 1))
        src = cross_timing(clip.music.beat_frames, clip.motion.num_frames, song.music.beat_frames, start_m, W,
                           aug.cross_rate_max, rng)
        if src is None:
            return None
        piece = clip.motion.at_times(src)
        if aug.mirror and rng.random() < 0.5:
            piece = mirror(piece)
        motion = motion_to_features(canonicalize(piece))
        music_src = start_m + np.arange(W, dtype=np.float64)
        heard, inputs = self.recording(rng, m)
        music = stretch_music(inputs, heard.beat_frames, heard.onset_frames, music_src, 1.0, self.rhythm)
        style = STYLES.index(_style(clip)) if self.styles and _style(clip) in STYLES else 0
        if same_style and rng.random() < aug.p_style_drop:
            style = 0
        return motion, music, style

    def draw(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch: normalised motion (B, W, 151), normalised music (B, W, D), style indices (B,)."""
        parts = [self.draw_one(rng) for _ in range(batch)]
        motion = self.normalizer.norm_motion(np.stack([p[0] for p in parts])).astype(np.float32)
        music = self.normalizer.norm_music(np.stack([p[1] for p in parts])).astype(np.float32)
        return motion, music, np.array([p[2] for p in parts], dtype=np.int64)


def _style(clip) -> str:
    return getattr(clip, "style", "unknown")
