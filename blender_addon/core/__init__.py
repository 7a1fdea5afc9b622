"""Blender-free logic of the add-on (rig layout, baking arrays, markers): importable and testable without bpy."""
