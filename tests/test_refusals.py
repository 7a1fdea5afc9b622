"""Issue 33: nonsense refused in one sentence, in the units the user typed, before any work starts (nothing written,
no model loaded, no section analysed); takes made for another song refused by `comp`; the video's sound starts where
its dance does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from backend.music.audio import song_meta
from rigs.motion import Motion
from tests.builders import random_motion

REPO = Path(__file__).resolve().parents[1]
SR = 8000


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Two different 90-s songs (noise at 8 kHz: only their length and bytes matter here)."""
    folder = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    for name in ("song.wav", "other.wav"):
        sf.write(str(folder / name), (rng.normal(size=90 * SR) * 0.1).astype(np.float32), SR)
    return folder


@pytest.fixture
def no_work(monkeypatch):
    """Any model load, section analysis or video pipeline fails the test: a refusal must come before them."""
    import backend.music.features as features
    import backend.music.prefetch as prefetch
    from backend.motion.generate import MotionExpert

    def started(what):
        def fail(*a, **k):
            raise AssertionError(f"work started: {what}")
        return fail

    monkeypatch.setattr(MotionExpert, "load", started("the Motion Expert was loaded"))
    monkeypatch.setattr(prefetch.SectionAnalysis, "__init__", started("the section analysis was started"))
    monkeypatch.setattr(features, "analyse_section", started("the section was analysed"))


def refused(*args) -> str:
    """The one sentence a CLI run refuses with (in-process, as `main` would print it)."""
    from backend.cli import CliError, app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code != 0, res.output
    exc = res.exception
    assert isinstance(exc, (CliError, ValueError)), repr(exc)  # main() prints these as one line, no traceback
    message = str(exc)
    assert "\n" not in message and "work started" not in message, message
    return message


def test_generate_refuses_a_section_outside_the_song_in_seconds_before_the_model_loads(songs, tmp_path, no_work):
    out = tmp_path / "out"
    song = songs / "song.wav"
    says = refused("generate", song, "-o", out, "--end", 500)
    assert says == "the section ends at 500 s but the song lasts only 90.0 s (leave --end out to dance to its end)"
    assert "starts at 95 s but the song lasts only 90.0 s" in refused("generate", song, "-o", out, "--start", 95)
    says = refused("generate", song, "-o", out, "--loop", 50)  # within the option's range, over half the dance
    assert says == "the loop blend (50 s) must be at most half the dance: this section lasts 90.0 s, so at most 45.0 s"
    assert "at most 10.0 s" in refused("generate", song, "-o", out, "--start", 70, "--loop", 12)
    random_motion(900, seed=2).save_npz(tmp_path / "ref.npz")  # a 30-s dance
    says = refused("generate", song, "-o", out, "--end", 30, "--reference", tmp_path / "ref.npz", "--regenerate",
                   "25:45")
    assert says.startswith("--regenerate 25:45 runs past the end of the section, which lasts 30.00 s")
    says = refused("generate", song, "-o", out, "--reference", tmp_path / "ref.npz", "--regenerate", "2:4")
    assert says == f"{tmp_path / 'ref.npz'}: the dance to edit lasts 30.00 s; the section needs 90.00 s"
    assert not out.exists()


def test_keys_files_are_checked_before_the_model_loads(songs, tmp_path, no_work):
    rotations = random_motion(3, seed=1).rotations
    files = {
        "both": dict(times=np.array([1.0]), frames=np.array([30]), rotations=rotations[:1]),
        "nan": dict(times=np.array([1.0, np.nan]), rotations=rotations[:2]),
        "inf": dict(times=np.array([-np.inf]), rotations=rotations[:1]),
        "late": dict(times=np.array([2.0, 95.0]), rotations=rotations[:2]),
        "late_frames": dict(frames=np.array([30, 2850]), rotations=rotations[:2]),
    }
    says = {}
    for name, arrays in files.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        says[name] = refused("generate", songs / "song.wav", "-o", tmp_path / "out", "--poses",
                             tmp_path / f"{name}.npz")
        assert says[name].startswith(f"{tmp_path / name}.npz: "), says[name]
    assert "has both 'frames' and 'times'" in says["both"]
    assert "'times' must be finite numbers of seconds, got nan" in says["nan"]
    assert "got -inf" in says["inf"] and "9223372036854775808" not in says["inf"]
    assert "keyed poses at 95.00 s lie outside the section (0 to 89.97 s)" in says["late"]
    assert "keyed poses at 95.00 s" in says["late_frames"]  # frames are told as the seconds they are
    assert not (tmp_path / "out").exists()


def _takes(folder: Path, songs: Path) -> dict[str, Path]:
    """90-s takes: two made for song.wav, one for other.wav, one for 0-60 s of song.wav, one from before dance files
    recorded their song."""
    made = {"a": ("song.wav", 90.0), "b": ("song.wav", 90.0), "other": ("other.wav", 90.0), "part": ("song.wav", 60.0)}
    paths = {}
    for k, (name, (song, end)) in enumerate(made.items()):
        paths[name] = random_motion(2700, seed=k).save_npz(folder / f"{name}.npz", meta=song_meta(songs / song, 0, end))
    paths["old"] = random_motion(2700, seed=9).save_npz(folder / "old.npz")
    return paths


def test_comp_refuses_ranges_in_the_seconds_typed_and_takes_of_another_song(songs, tmp_path, no_work):
    takes = _takes(tmp_path, songs)
    out = tmp_path / "comp"

    def comp(*args, take=("a", "b")):
        return refused("comp", songs / "song.wav", "-o", out, *[x for t in take for x in ("--take", takes[t])], *args)

    says = comp("--use", "0:8=1", "--use", "8:200=2")
    assert says == "--use 8:200=2: it ends at 200 s but the song section lasts 90.00 s (write END as 'end' to run " \
                   "to its end)"
    assert "nothing dances 8-10 s" in comp("--use", "0:8=1", "--use", "10:end=2")
    assert "10-12 s is danced twice" in comp("--use", "0:12=1", "--use", "10:end=2")
    assert "the ranges stop at 80 s" in comp("--use", "0:12=1", "--use", "12:80=2")
    assert "there is no take 3" in comp("--use", "0:12=1", "--use", "12:end=3")
    for text in (comp("--use", "0:8=1", "--use", "10:end=2"), comp("--use", "0:12=1", "--use", "10:end=2")):
        assert "frame" not in text
    says = comp("--use", "0:12=1", "--use", "12:end=2", take=("a", "other"))
    assert says.startswith(f"{takes['other']} was made for another song (other.wav), not {songs / 'song.wav'}")
    (songs / "again").mkdir(exist_ok=True)  # the same name, another recording (the ballroom set's audio.mp3 files)
    (songs / "again" / "song.wav").write_bytes((songs / "other.wav").read_bytes())
    says = refused("comp", songs / "again" / "song.wav", "-o", out, "--take", takes["a"], "--use", "0:end=1")
    assert says.startswith(f"{takes['a']} was made for a different song.wav (its contents differ), not ")
    says = comp("--use", "0:12=1", "--use", "12:end=2", take=("part", "b"))
    assert says.startswith(f"{takes['part']} was made for 0-60 s of the song but this comp is of 0-90 s")
    assert "ends at 500 s" in comp("--end", 500, "--use", "0:end=1")
    assert not out.exists()
    # takes from before dance files recorded their song, and takes of this song, pass the checks (the analysis of
    # the section, the first work, is reached)
    from backend.cli import app

    res = CliRunner().invoke(app, ["comp", str(songs / "song.wav"), "-o", str(out), "--take", str(takes["a"]),
                                   "--take", str(takes["old"]), "--use", "0:12=1", "--use", "12:end=2"])
    assert "the section was analysed" in str(res.exception)


def test_the_pipeline_checks_section_dependent_options_against_the_music_it_is_given():
    """The server's path: the same checks in the pipeline's constraints stage, before any sampling."""
    from types import SimpleNamespace

    from backend.motion.pipeline import dance
    from backend.music.features import MusicFeatures
    from bridge.request import DanceRequest, Edit, KeyedPoses, RequestError

    music = MusicFeatures(np.zeros((900, 35), np.float32), np.arange(0, 900, 15), np.arange(0, 900, 15), 120.0, 30.0)
    expert = SimpleNamespace(model=SimpleNamespace(cfg=SimpleNamespace(n_styles=0)), normalizer=None)
    ref = random_motion(900, seed=1)
    cases = {
        "loop": DanceRequest(loop=20.0),
        "edit": DanceRequest(reference=ref, edit=Edit(keep_frames=[(0, 750), (1350, 10 ** 7)])),
        "keys": DanceRequest(keys=KeyedPoses(np.array([30, 1000]), ref.rotations[:2].astype(np.float64))),
    }
    says = {}
    for name, request in cases.items():
        with pytest.raises(RequestError) as info:
            dance(request, music, expert)
        assert info.value.name == name
        says[name] = str(info.value)
    assert says["loop"] == "the loop blend (20 s) must be at most half the dance: this section lasts 30.0 s, so at " \
                           "most 15.0 s"
    assert says["edit"] == "the edit's range to regenerate runs to 45.00 s, past the end of the section (30.00 s long)"
    assert says["keys"] == "keyed poses at 33.33 s lie outside the section (0 to 29.97 s)"


def test_a_section_past_the_songs_end_is_refused_by_the_analysis_too(songs):
    """The server analyses the section it is sent: an end past the song is refused there as well, not clipped."""
    from backend.music.audio import AudioError
    from backend.music.features import analyse_section

    with pytest.raises(AudioError, match="the section ends at 500 s but the song lasts only 90.0 s"):
        analyse_section(songs / "song.wav", 10.0, 500.0)


def test_poses_refuses_non_positive_sheet_settings(tmp_path):
    random_motion(20, seed=1).save_npz(tmp_path / "dance.npz")
    for flag, value in (("--columns", 0), ("--every", 0), ("--columns", -3), ("--every", -1)):
        says = refused("poses", tmp_path / "dance.npz", "-o", tmp_path / "poses", flag, value)
        assert says == f"{flag} must be a whole number of 1 or more, got {value}"
    assert not (tmp_path / "poses").exists()


@pytest.fixture
def no_render(monkeypatch):
    from backend.appearance.pipeline import AppearanceExpert

    def fail(*a, **k):
        raise AssertionError("work started: the video pipeline was built")

    monkeypatch.setattr(AppearanceExpert, "tiny", fail)
    monkeypatch.setattr(AppearanceExpert, "from_folder", fail)


def test_video_refuses_missing_audio_bad_dtypes_and_frames_beyond_memory_before_any_work(tmp_path, songs, no_render):
    from PIL import Image

    random_motion(2700, seed=1).save_npz(tmp_path / "dance.npz")  # 90 s
    Image.new("RGB", (32, 32)).save(tmp_path / "ref.png")
    out = tmp_path / "video"
    base = ("video", tmp_path / "dance.npz", tmp_path / "ref.png", "-o", out)
    says = refused(*base, "--tiny", "--width", 16, "--height", 16, "--audio", tmp_path / "missing.mp3")
    assert says == f"{tmp_path / 'missing.mp3'}: audio file not found"
    says = refused(*base, "--tiny", "--width", 4096, "--height", 4096)
    assert says.startswith("2700 frames at 4096x4096 need 135.9 GB of memory (2700 x 4096 x 4096 x 3 bytes), over "
                           "the 8 GB limit"), says
    assert refused(*base, "--model-dir", tmp_path, "--dtype", "int8") == "--dtype must be bf16, fp16 or fp32, got 'int8'"
    says = refused(*base, "--tiny", "--width", 16, "--height", 16, "--audio", songs / "song.wav", "--audio-start", 95)
    assert says == f"--audio-start 95 s lies outside {songs / 'song.wav'} (it lasts 90.0 s)"
    assert "--audio-start needs --audio" in refused(*base, "--tiny", "--audio-start", 3)
    assert not out.exists()


def _decoded_audio(mp4: Path) -> np.ndarray:
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(mp4), "-vn", "-f", "f32le",
                          "-ac", "1", "-ar", str(SR), "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


def _offset(clip: np.ndarray, song: np.ndarray) -> float:
    """Where in `song` the clip's sound starts (s), by cross-correlation."""
    n = len(clip) // 2
    a = clip[n // 4: n // 4 + n]
    corr = np.correlate(song, a, mode="valid")
    return (int(np.argmax(corr)) - n // 4) / SR


def test_the_video_of_a_section_plays_the_sections_music(tmp_path):
    """A dance of 4-6 s of a song: its MP4's sound is the song from 4 s (recorded in the dance file), or from where
    --audio-start says."""
    from PIL import Image

    song = (np.random.default_rng(3).normal(size=10 * SR) * 0.2).astype(np.float32)
    sf.write(str(tmp_path / "song.wav"), song, SR)
    random_motion(60, seed=1, scale=0.1).save_npz(tmp_path / "dance.npz", meta=song_meta(tmp_path / "song.wav", 4, 6))
    Image.new("RGB", (32, 32), (120, 90, 60)).save(tmp_path / "ref.png")
    starts = {}
    for name, extra in (("recorded", ()), ("override", ("--audio-start", "1.5"))):
        res = subprocess.run([sys.executable, "-m", "backend.cli", "video", str(tmp_path / "dance.npz"),
                              str(tmp_path / "ref.png"), "--tiny", "--width", "16", "--height", "16", "--steps", "1",
                              "--segment", "9", "--audio", str(tmp_path / "song.wav"), "-o", str(tmp_path / name),
                              *extra], capture_output=True, text=True, timeout=300, cwd=REPO)
        assert res.returncode == 0, res.stderr[-2000:]
        starts[name] = _offset(_decoded_audio(tmp_path / name / "video.mp4"), song)
    assert starts["recorded"] == pytest.approx(4.0, abs=0.05)
    assert starts["override"] == pytest.approx(1.5, abs=0.05)


def test_a_refusal_is_one_printed_line_without_a_traceback(songs, tmp_path):
    """As a user sees it: `python -m backend.cli ...` prints one `error:` line and exits 2."""
    random_motion(20, seed=1).save_npz(tmp_path / "dance.npz")
    # a damaged mp3: libmpg123 printed its own "Note: Illegal Audio-MPEG-Header ..." lines before our sentence
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + np.random.default_rng(5).bytes(20_000))
    for args in (("generate", songs / "song.wav", "--end", "500", "-o", tmp_path / "out"),
                 ("poses", tmp_path / "dance.npz", "--columns", "0", "-o", tmp_path / "poses"),
                 ("generate", damaged, "-o", tmp_path / "out")):
        res = subprocess.run([sys.executable, "-m", "backend.cli", *map(str, args)], capture_output=True, text=True,
                             timeout=300, cwd=REPO)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
        assert "unexpected" not in res.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "poses").exists()


def test_dance_files_record_their_song_and_old_files_still_load(tmp_path, songs):
    m = random_motion(10, seed=1)
    meta = song_meta(songs / "song.wav", 2.5, 40.0)
    m.save_npz(tmp_path / "new.npz", meta=meta)
    m.save_npz(tmp_path / "old.npz")
    assert Motion.read_meta(tmp_path / "new.npz") == meta and len(meta["song_sha256"]) == 64
    assert Motion.read_meta(tmp_path / "old.npz") == {}
    np.testing.assert_array_equal(Motion.load_npz(tmp_path / "new.npz").rotations, m.rotations)
    assert song_meta(songs / "song.wav", 0, 1)["song_sha256"] != song_meta(songs / "other.wav", 0, 1)["song_sha256"]


def test_a_keys_files_shapes_and_values_are_checked_before_the_model_loads(songs, tmp_path, no_work):
    np.savez(tmp_path / "short.npz", times=np.array([1.0, 2.0]), rotations=np.ones((2, 23, 4)))
    np.savez(tmp_path / "nan.npz", times=np.array([1.0]), rotations=np.full((1, 24, 4), np.nan))
    says = refused("generate", songs / "song.wav", "-o", tmp_path / "out", "--poses", tmp_path / "short.npz")
    assert says == f"{tmp_path / 'short.npz'}: keyed rotations must be (2, 24, 4) quaternions, got (2, 23, 4)"
    says = refused("generate", songs / "song.wav", "-o", tmp_path / "out", "--poses", tmp_path / "nan.npz")
    assert "keyed rotations contain NaN" in says
    assert not (tmp_path / "out").exists()


def test_a_song_ffmpeg_cannot_read_is_one_line_naming_it(tmp_path):
    from backend.appearance.video_io import write_mp4

    (tmp_path / "song.wav").write_bytes(b"RIFF not really a wave file")
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(OSError) as info:
        write_mp4(frames, tmp_path / "video.mp4", 30.0, tmp_path / "song.wav")
    says = str(info.value)
    assert says.startswith(f"{tmp_path / 'song.wav'}: ffmpeg could not put the song under the video") and "\n" not in says
    assert (tmp_path / "video.video.mp4").is_file()  # the frames are not lost


def test_a_use_range_shorter_than_a_frame_is_told_in_seconds(songs, tmp_path, no_work):
    takes = _takes(tmp_path, songs)
    says = refused("comp", songs / "song.wav", "-o", tmp_path / "c", "--take", takes["a"], "--take", takes["b"],
                   "--use", "0:0.01=1", "--use", "0.01:end=2")
    assert says == "--use 0:0.01=1: a range must last at least a frame (0.033 s)"
