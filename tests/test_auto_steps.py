"""A request that leaves the DDIM steps open gets 6 for a dance built from the figure library (the model dances only
its joins) and 12 for pure generation; steps asked for are used as asked (issue 34, item 3)."""

from backend.motion.generate import MotionExpert
from backend.motion.pipeline import dance
from bridge.request import GENERATION_STEPS, LIBRARY_STEPS, DanceRequest
from bridge.request_wire import to_wire
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


def test_open_steps_do_not_travel_and_asked_ones_do():
    assert "steps" not in to_wire(DanceRequest())[0]
    assert to_wire(DanceRequest(steps=9))[0]["steps"] == 9
