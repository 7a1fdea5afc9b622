"""CLIP's image processor for the pipeline, chosen explicitly so no torchvision is needed and nothing warns.

transformers >= 5 points the name `CLIPImageProcessor` at a torchvision backend; without torchvision it falls back
to `CLIPImageProcessorPil` and warns on first use of the name, which diffusers' Wan-Animate module does when it is
imported. The Wan-Animate processor only resizes and normalises one reference image, which the PIL processor does
the same way, so we bind the name to it before diffusers is imported.
"""

from __future__ import annotations

import importlib.util
import sys


def prefer_pil_processor() -> None:
    """Make `transformers.CLIPImageProcessor` the PIL processor when torchvision is absent (call before diffusers)."""
    if importlib.util.find_spec("torchvision") is not None:
        return
    try:
        from transformers import CLIPImageProcessorPil
    except ImportError:  # transformers 4.x: the plain processor is already the PIL one
        return
    # transformers swaps its lazy module object in sys.modules as names are first imported: bind the name on the
    # module object imports will see
    setattr(sys.modules["transformers"], "CLIPImageProcessor", CLIPImageProcessorPil)


def image_processor(**kwargs):
    """A CLIP image processor built with `kwargs` (the PIL one when torchvision is absent)."""
    prefer_pil_processor()
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(**kwargs)
