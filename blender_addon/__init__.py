"""MACE-Dance for Blender: pick a song, get a keyframed dance (3D Viewport > Sidebar > Dance).

The add-on never imports torch: generation runs in the backend process (started here on loopback in Local mode,
or a remote `mace-dance serve`), reached through `bridge.client.BridgeClient` from one timer that does a bounded
amount of work per tick, so Blender stays responsive.
"""

from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_vendor = os.path.join(_here, "vendor")  # the built extension carries rigs/ and bridge/ here
if os.path.isdir(_vendor) and _vendor not in sys.path:
    sys.path.insert(0, _vendor)

bl_info = {  # legacy add-on metadata (Blender < 4.2); extensions read blender_manifest.toml
    "name": "MACE-Dance",
    "blender": (4, 2, 0),
    "category": "Animation",
    "location": "3D Viewport > Sidebar > Dance",
    "description": "Music to keyframed dance",
}


def register() -> None:
    from . import bone_map, export_panel, export_props, operators, panel, props

    props.register()
    export_props.register()
    bone_map.register()
    operators.register()
    panel.register()
    bone_map.register_panel()  # sub-panels of the main one: after it
    export_panel.register()


def unregister() -> None:
    from . import bone_map, export_panel, export_props, operators, panel, props

    export_panel.unregister()
    bone_map.unregister_panel()
    panel.unregister()
    operators.unregister()
    bone_map.unregister()
    export_props.unregister()
    props.unregister()
