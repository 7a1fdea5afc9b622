"""A comp's transitions lead the pelvis from one take to the next no faster than the takes dance: the model used to
lunge out and back at the switches (issue 33, item 4)."""

import numpy as np
import torch

from backend.motion.choreography import root_bridge, transition_constraint
from backend.motion.generate import MotionExpert
from backend.motion.pipeline import dance
from backend.motion.representation import ROOT
from bridge.request import DanceRequest, Edit
from rigs.splice import assemble
from tests.builders import smooth_dance
from tests.test_bridge import tiny_model  # noqa: F401 - the shared tiny model folder
from tests.test_retrieval import song


def _speed(xz: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(xz, axis=0), axis=-1) * 30.0


def test_the_bridge_joins_both_sides_at_their_positions_and_speeds():
    t = np.arange(200) / 30.0
    xz = np.stack([np.sin(t), 0.5 * t], axis=1)  # a dancer travelling on a curve at under 1 m/s
    xz[100:] += [0.8, -0.6]  # a take whose stand is elsewhere: a 1-m jump at the switch
    keep = np.ones(200, bool)
    keep[84:116] = False
    out = root_bridge(xz, keep)
    np.testing.assert_array_equal(out[keep], xz[keep].astype(np.float32))  # kept frames untouched
    steps = _speed(out)
    assert steps[83:116].max() < 1.25 * (np.linalg.norm(xz[116] - xz[83]) / (33 / 30.0) + _speed(xz[:84]).max())
    # it leaves and arrives at the sides' own velocities: no kink at the transition's edges
    assert np.abs(np.diff(out[80:88], 2, axis=0)).max() < 0.01 and np.abs(np.diff(out[112:120], 2, axis=0)).max() < 0.01


def test_a_comp_transition_never_moves_the_pelvis_faster_than_the_takes(tiny_model):  # noqa: F811
    expert, music = MotionExpert.load(tiny_model), song(10.0)
    takes = [smooth_dance(10.0, seed) for seed in (1, 2)]
    L = music.num_frames
    cuts = [(0, L // 3, 0), (L // 3, 2 * L // 3, 1), (2 * L // 3, L, 0)]
    reference, switches = assemble(takes, cuts)
    constraint = transition_constraint(reference, switches, expert.normalizer)
    free = ~constraint.mask[:, 7:].any(axis=1)  # frames whose pose the model dances
    assert free.any() and constraint.mask[free][:, [ROOT.start, ROOT.start + 2]].all()  # the pelvis is led there
    torch.manual_seed(0)
    out, _ = dance(DanceRequest(steps=3, reference=reference, edit=Edit(transitions=list(switches))), music, expert)
    own = max(_speed(t.root_translation[:, [0, 2]]).max() for t in takes)
    assert _speed(out.root_translation[:, [0, 2]]).max() <= 1.05 * own


def test_keys_lead_the_pelvis_through_their_windows_along_the_dance_or_through_a_moved_key(tiny_model):  # noqa: F811
    """Dance Through Keys on a given dance: the pelvis was led only between the windows' edges, so at each key it
    was pulled to the dance's own stand in one frame (a lunge). Now it follows the dance's path through the window,
    or a smooth bridge through the key where the animator moved the pelvis."""
    from backend.motion.choreography import keys_from_dance
    from backend.motion.constraints import KEY_WINDOW, key_root_path
    from rigs.splice import transition_keep

    ref = smooth_dance(10.0, 3)
    t = np.arange(ref.num_frames) / 30.0
    ref.root_translation[:, 0] = 0.8 * np.sin(1.3 * t)  # a dancer travelling on a curve
    ref.root_translation[:, 2] = 0.4 * t
    frames = np.array([90, 200])
    keep = transition_keep(ref.num_frames, frames.tolist(), KEY_WINDOW)
    keys = keys_from_dance(ref, frames)
    own = ref.root_translation[:, [0, 2]]
    np.testing.assert_allclose(key_root_path(ref, keys, keep), own, atol=1e-6)  # the dance's own path
    # the animator moved the pelvis 30 cm at the second key: the path goes through it, smoothly, nothing else moves
    keys.root[1, 0] += 0.3
    path = key_root_path(ref, keys, keep)
    np.testing.assert_allclose(path[200], keys.root[1, [0, 2]], atol=1e-6)
    np.testing.assert_allclose(path[:150], own[:150], atol=1e-6)
    window = slice(200 - KEY_WINDOW - 1, 200 + KEY_WINDOW + 2)
    assert _speed(path[window]).max() < _speed(own).max() + 0.3 / (KEY_WINDOW / 30.0) * 1.6
    # through the pipeline the pelvis never moves faster than the dance's own fastest stretch
    expert, music = MotionExpert.load(tiny_model), song(10.0)
    from bridge.request import KeyedPoses

    torch.manual_seed(0)
    request = DanceRequest(steps=3, reference=ref, keys=KeyedPoses(frames=frames.tolist(),
                                                                   rotations=ref.rotations[frames]))
    out, _ = dance(request, music, expert)
    assert _speed(out.root_translation[:, [0, 2]]).max() <= 1.05 * _speed(own).max()
