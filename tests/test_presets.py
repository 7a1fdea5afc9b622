"""Bone-map presets: the user's own saved beside the shipped ones, read back exactly, and edited maps checked."""

from pathlib import Path

import pytest

from rigs.presets import (RetargetError, RetargetPreset, bone_map, guess_preset, list_presets, user_presets_dir)


@pytest.fixture
def presets_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MACE_DANCE_RIG_PRESETS", str(tmp_path / "presets"))
    return tmp_path / "presets"


def test_a_saved_preset_reads_back_exactly_and_is_listed(presets_dir):
    bones = {"pelvis": "Hüfte \"root\"", "left_hip": "L\\thigh", "left_knee": "knee.L", "right_hip": "thigh R",
             "right_knee": "knee.R", "left_ankle": "foot.L", "right_ankle": "foot.R", "head": "Kopf 頭 😀 𠀀",
             "neck": "tab\tand \u0001 control"}
    path = RetargetPreset("studio-hero_2", "our hero 🕺", bones).save()
    assert path.parent == presets_dir == user_presets_dir()
    assert "studio-hero_2" in list_presets() and "mixamo" in list_presets()
    back = RetargetPreset.load("studio-hero_2")
    assert back.bones == bones and back.description == "our hero 🕺" and back.name == "studio-hero_2"


def test_a_user_preset_takes_a_shipped_ones_place(presets_dir):
    shipped = RetargetPreset.load("mixamo")
    fixed = dict(shipped.bones, left_elbow="LeftForeArmTwisted")
    RetargetPreset("mixamo", "fixed forearm", fixed).save()
    assert RetargetPreset.load("mixamo").bones["left_elbow"] == "LeftForeArmTwisted"
    names = ["mixamorig:" + b for b in fixed.values()]
    preset, mapping = guess_preset(names)
    assert preset.description == "fixed forearm" and names[mapping["left_elbow"]] == "mixamorig:LeftForeArmTwisted"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "x" * 65, ".hidden", "with space"])
def test_preset_names_that_are_not_plain_file_names_are_refused(presets_dir, name):
    with pytest.raises(RetargetError, match="preset name"):
        RetargetPreset(name, "", {"pelvis": "hips"}).save()
    assert not presets_dir.exists() or not any(presets_dir.iterdir())  # nothing written


def test_a_broken_preset_file_is_named(presets_dir):
    presets_dir.mkdir()
    (presets_dir / "broken.toml").write_text("name = [unclosed\n")
    with pytest.raises(RetargetError, match="broken.toml cannot be read"):
        RetargetPreset.load("broken")
    (presets_dir / "wrong.toml").write_text('[bones]\nelbow_of_doom = "x"\n')
    with pytest.raises(RetargetError, match="unknown SMPL joints"):
        RetargetPreset.load("wrong")
    # a broken preset beside the others does not stop the guess for every rig
    names = ["mixamorig:" + b for b in RetargetPreset.load("mixamo").bones.values()]
    assert guess_preset(names)[0].name == "mixamo"


def test_a_preset_is_named_by_its_file(presets_dir):
    presets_dir.mkdir()
    text = (Path(RetargetPreset.load("mixamo").save(presets_dir))).read_text()
    (presets_dir / "our_copy.toml").write_text(text)  # a copied file keeps the name line of the original
    assert RetargetPreset.load("our_copy").name == "our_copy"


LEGS = {"pelvis": "hips", "left_hip": "lt", "right_hip": "rt", "left_knee": "lk", "right_knee": "rk",
        "left_ankle": "la", "right_ankle": "ra"}


def test_an_edited_map_is_checked_row_by_row():
    names = list(LEGS.values()) + ["spine", "arm"]
    assert bone_map({**LEGS, "spine1": "spine", "left_elbow": ""}, names) == {
        **{j: names.index(b) for j, b in LEGS.items()}, "spine1": names.index("spine")}
    with pytest.raises(RetargetError, match="gives left_elbow the bone 'armX', which this armature does not have"):
        bone_map({**LEGS, "left_elbow": "armX"}, names)
    with pytest.raises(RetargetError, match="gives 'spine' to both spine1 and spine2"):
        bone_map({**LEGS, "spine1": "spine", "spine2": "spine"}, names)
    with pytest.raises(RetargetError, match="needs a bone for left_knee"):
        bone_map({**LEGS, "left_knee": ""}, names)
    with pytest.raises(RetargetError, match="'tail', which is not an SMPL joint"):
        bone_map({**LEGS, "tail": "spine"}, names)
