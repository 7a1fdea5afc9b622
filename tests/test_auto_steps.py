"""A request that leaves the DDIM steps open gets LIBRARY_STEPS from LIBRARY_START for a dance built from the figure
library (the model dances only its joins, starting from the library's eased ones), EDIT_STEPS from noise when that
dance is edited by kept frames or keyed poses or loops, and 12 for pure generation (or an edit that keeps something on
every frame); steps asked for are used as asked (issue 34, item 3)."""

import numpy as np

from backend.motion import sampling
from backend.motion.generate import MotionExpert
from backend.motion.pipeline import dance
from bridge.request import (EDIT_STEPS, GENERATION_STEPS, LIBRARY_START, LIBRARY_STEPS, DanceRequest, Edit,
                            KeyedPoses)
from bridge.request_wire import to_wire
from tests.builders import smooth_dance
from tests.test_bridge import tiny_model  # noqa: F401 - the shared tiny model folder
from tests.test_novelty import with_library  # noqa: F401 - the tiny model with a figure library beside it
from tests.test_retrieval import song


def _steps(folder, **request) -> tuple[int, list[int]]:
    """The report's steps and the totals the progress callback saw."""
    totals = []
    _, report = dance(DanceRequest(beat_sync=0.0, speed_limit=0.0, **request), song(8.0), MotionExpert.load(folder),
                      lambda stage, i, n: totals.append(n) if stage == "denoise" else None)
    return report.steps, sorted(set(totals))


def test_the_pipeline_picks_the_steps_a_request_leaves_open(with_library, tiny_model):  # noqa: F811
    assert _steps(with_library, novelty=0.0) == (LIBRARY_STEPS, [LIBRARY_STEPS])
    assert _steps(with_library, novelty=1.0) == (GENERATION_STEPS, [GENERATION_STEPS])
    assert _steps(with_library, novelty=0.5) == (GENERATION_STEPS, [GENERATION_STEPS])  # the model redances it all
    assert _steps(tiny_model, novelty=0.0) == (GENERATION_STEPS, [GENERATION_STEPS])  # no library: pure generation
    assert _steps(with_library, novelty=0.0, steps=3) == (3, [3])


def _retrieve_note(report) -> str:
    return next(s.note for s in report.stages if s.name == "retrieve")


def test_only_an_unedited_library_dance_starts_part_way(with_library, monkeypatch):  # noqa: F811
    starts = []
    real = sampling._sample
    monkeypatch.setattr(sampling, "_sample", lambda model, music, options, *a: starts.append(
        (options.steps, options.start)) or real(model, music, options, *a))
    expert, music = MotionExpert.load(with_library), song(8.0)
    base, report = dance(DanceRequest(novelty=0.0, beat_sync=0.0), music, expert)
    assert starts == [(LIBRARY_STEPS, LIBRARY_START)]
    assert f"begun from the library's eased joins noised to {LIBRARY_START:g}" in _retrieve_note(report)
    starts.clear()
    _, report = dance(DanceRequest(novelty=0.0, beat_sync=0.0, reference=base, edit=Edit(keep_frames=[(0, 90)])),
                      music, expert)
    assert starts == [(EDIT_STEPS, 1.0)]  # an edit's new frames are danced from noise
    assert "danced anew)" in _retrieve_note(report)  # no start to name
    starts.clear()
    keys = KeyedPoses(np.array([60, 200]), smooth_dance(1.0, 9).rotations[[3, 8]].astype(np.float64))
    dance(DanceRequest(novelty=0.0, beat_sync=0.0, keys=keys), music, expert)
    # the free dance the keys go into, then the keys danced into it as an edit, from noise
    assert starts == [(LIBRARY_STEPS, LIBRARY_START), (EDIT_STEPS, 1.0)]
    starts.clear()
    dance(DanceRequest(novelty=0.0, beat_sync=0.0, keys=keys, reference=base), music, expert)
    assert starts == [(EDIT_STEPS, 1.0)]  # keys into a given dance: the same edit
    starts.clear()
    dance(DanceRequest(novelty=0.0, beat_sync=0.0, reference=base, edit=Edit(keep_joints=["left_knee"])), music,
          expert)
    assert starts == [(GENERATION_STEPS, 1.0)]  # a joint kept on every frame: no frame left to the library
    starts.clear()
    dance(DanceRequest(novelty=0.0, beat_sync=0.0, loop=1.0), music, expert)
    assert starts == [(EDIT_STEPS, 1.0)]  # a loop's tail past the end is no part of the library's dance
    starts.clear()
    dance(DanceRequest(novelty=0.0, beat_sync=0.0, steps=5), music, expert)
    dance(DanceRequest(novelty=1.0, beat_sync=0.0), music, expert)
    assert starts == [(5, LIBRARY_START), (GENERATION_STEPS, 1.0)]


def test_open_steps_do_not_travel_and_asked_ones_do():
    assert "steps" not in to_wire(DanceRequest())[0]
    assert to_wire(DanceRequest(steps=9))[0]["steps"] == 9
