"""Draw the add-on's panels in a real bpy session without a window: a layout that records what a panel asks for and
checks it against Blender's own RNA (a property or operator that does not exist raises, as Blender would only
print), and a picture of the recorded panel for the README.

Background bpy has no UI regions to draw into, so this stands in for `Panel.layout` and `UIList.draw_item`'s layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy


_ICONS = {"X": "✕", "FILE_TICK": "✓"}  # the glyphs of the icon-only buttons the panels use


class RecordedOperator:
    """What `layout.operator` returns: setting an operator property checks that the operator has it."""

    def __init__(self, rna):
        object.__setattr__(self, "_rna", rna)
        object.__setattr__(self, "values", {})

    def __setattr__(self, name, value):
        if name not in self._rna.properties:
            raise AttributeError(f"operator {self._rna.identifier} has no property {name!r}")
        self.values[name] = value


def _shown(data, prop: str) -> str:
    rna = data.bl_rna.properties[prop]
    value = getattr(data, prop)
    if rna.type == "ENUM" and not rna.is_enum_flag:  # dynamic items too: Blender's own lookup calls their function
        return bpy.types.UILayout.enum_item_name(data, prop, value) or str(value)
    if rna.type == "FLOAT":
        return f"{value:.3g}" if not hasattr(value, "__len__") else ", ".join(f"{v:.3g}" for v in value)
    if rna.type == "POINTER":
        return getattr(value, "name", "") if value is not None else ""
    return str(value)


@dataclass
class Layout:
    """One layout node: a row, column, box, split or list row, with the widgets put in it."""

    kind: str = "column"
    items: list = field(default_factory=list)
    alert: bool = False
    active: bool = True
    enabled: bool = True
    scale_y: float = 1.0
    scale_x: float = 1.0
    use_property_split: bool = False
    use_property_decorate: bool = False
    factor: float = 0.0

    def _child(self, kind: str, **kw) -> "Layout":
        node = Layout(kind, **kw)
        node.alert = self.alert
        self.items.append(node)
        return node

    def row(self, align: bool = False, heading: str = "", **_) -> "Layout":
        return self._child("row")

    def column(self, align: bool = False, heading: str = "", **_) -> "Layout":
        return self._child("column")

    def box(self) -> "Layout":
        return self._child("box")

    def split(self, factor: float = 0.0, align: bool = False) -> "Layout":
        return self._child("split", factor=factor)

    def separator(self, factor: float = 1.0, **_) -> None:
        self.items.append(("separator",))

    def label(self, text: str = "", icon: str = "NONE", **_) -> None:
        self.items.append(("label", text, self.alert))

    def prop(self, data, prop: str, text: str | None = None, expand: bool = False, **_) -> None:
        rna = data.bl_rna.properties.get(prop)
        if rna is None:
            raise AttributeError(f"{data.bl_rna.identifier} has no property {prop!r}")
        label = rna.name if text is None else text
        kind = "check" if rna.type == "BOOLEAN" else "enum" if rna.type == "ENUM" else "field"
        self.items.append((kind, label, _shown(data, prop), self.alert, getattr(data, prop)))

    def prop_search(self, data, prop: str, search_data, search_prop: str, text: str | None = None, **_) -> None:
        rna = data.bl_rna.properties.get(prop)
        if rna is None or search_data.bl_rna.properties.get(search_prop) is None:
            raise AttributeError(f"prop_search: {data.bl_rna.identifier}.{prop} in "
                                 f"{search_data.bl_rna.identifier}.{search_prop} does not exist")
        self.items.append(("search", rna.name if text is None else text, str(getattr(data, prop)), self.alert, None))

    def operator(self, idname: str, text: str | None = None, icon: str = "NONE", **_) -> RecordedOperator:
        module, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()  # raises for an operator that does not exist
        shown = rna.name if text is None else text or _ICONS.get(icon, icon.title())
        self.items.append(("button", shown, self.alert))
        return RecordedOperator(rna)

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        self.items.append(("progress", text, float(factor)))

    def template_list(self, listtype: str, list_id: str, data, propname: str, active_data, active_propname: str,
                      rows: int = 5, **_) -> None:
        cls = getattr(bpy.types, listtype)
        getattr(active_data, active_propname)
        for index, item in enumerate(getattr(data, propname)):
            cls.draw_item(None, bpy.context, self._child("listrow"), data, item, "NONE", active_data,
                          active_propname, index)

    def widgets(self) -> list[tuple]:
        """Every widget below this node, in drawing order."""
        out = []
        for item in self.items:
            out.extend(item.widgets() if isinstance(item, Layout) else [item])
        return out


class _PanelSelf:
    """`self` for a panel's draw(): its layout, and the class's own attributes and static helpers."""

    def __init__(self, cls, layout: Layout):
        self._cls, self.layout = cls, layout

    def __getattr__(self, name):
        return getattr(self._cls, name)


def draw_panel(cls, context=None) -> Layout:
    """Record `cls.draw` (a registered Panel class) in the current bpy context."""
    layout = Layout("panel")
    if getattr(cls, "poll", None) is None or cls.poll(context or bpy.context):
        cls.draw(_PanelSelf(cls, layout), context or bpy.context)
    return layout


# --- a picture of recorded panels ------------------------------------------------------------------------------------

LINE, PAD, WIDTH = 24, 6, 380
_COLOURS = {"bg": (48, 48, 48), "panel": (40, 40, 40), "header": (60, 60, 60), "text": (225, 225, 225),
            "field": (84, 84, 84), "button": (88, 88, 88), "box": (56, 56, 56), "alert": (190, 60, 60),
            "dim": (150, 150, 150), "check": (72, 120, 190), "bar": (72, 120, 190), "list": (34, 34, 34)}


def _height(node) -> int:
    if not isinstance(node, Layout):
        return LINE
    if node.kind in ("row", "split", "listrow"):
        return max([_height(i) for i in node.items] or [0])
    inner = sum(_height(i) for i in node.items)
    return inner + (2 * PAD if node.kind == "box" else 0)


def _draw(draw, font, node, x: int, y: int, w: int) -> None:
    c = _COLOURS
    if isinstance(node, Layout):
        if node.kind == "box":
            draw.rectangle([x, y, x + w, y + _height(node) - 2], fill=c["box"], outline=c["header"])
            x, y, w = x + PAD, y + PAD, w - 2 * PAD
        if node.kind == "listrow":
            draw.rectangle([x, y, x + w, y + LINE - 1], fill=c["list"])
        if node.kind in ("row", "split", "listrow") and node.items:
            shares = [1.0] * len(node.items)
            if node.kind == "split" and node.factor and len(node.items) >= 2:
                shares = [node.factor] + [(1 - node.factor) / (len(node.items) - 1)] * (len(node.items) - 1)
            total, cx = sum(shares), x
            for item, share in zip(node.items, shares):
                cw = int(w * share / total)
                _draw(draw, font, item, cx, y, cw - 2)
                cx += cw
            return
        for item in node.items:
            _draw(draw, font, item, x, y, w)
            y += _height(item)
        return
    kind = node[0]
    y0, y1 = y + 2, y + LINE - 3
    text_y = y + 5
    if kind == "label":
        draw.text((x + 2, text_y), node[1], fill=c["alert"] if node[2] else c["text"], font=font)
    elif kind == "button":
        draw.rounded_rectangle([x, y0, x + w, y1], 4, fill=c["alert"] if node[2] else c["button"])
        tw = draw.textlength(node[1], font=font)
        draw.text((x + max(2, (w - tw) / 2), text_y), node[1], fill=c["text"], font=font)
    elif kind == "check":
        draw.rounded_rectangle([x + 2, y0 + 2, x + 16, y0 + 16], 3, fill=c["check"] if node[4] else c["field"])
        draw.text((x + 22, text_y), node[1], fill=c["text"], font=font)
    elif kind in ("field", "enum", "search"):
        fill = c["alert"] if node[3] else c["field"]
        draw.rounded_rectangle([x, y0, x + w, y1], 4, fill=fill)
        label = f"{node[1]}: {node[2]}" if node[1] else node[2]
        while label and draw.textlength(label, font=font) > w - 8:
            label = label[:-2] + "…" if len(label) > 2 else ""
        draw.text((x + 4, text_y), label, fill=c["text"], font=font)
    elif kind == "progress":
        draw.rounded_rectangle([x, y0, x + w, y1], 4, fill=c["field"])
        draw.rounded_rectangle([x, y0, x + int(w * node[2]), y1], 4, fill=c["bar"])
        draw.text((x + 4, text_y), node[1], fill=c["text"], font=font)


def picture(panels: list[tuple[str, Layout]], path: str) -> None:
    """Save the recorded panels, each under its title, one below the other, as a PNG."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 12)
    except OSError:
        font = ImageFont.load_default()
    height = sum(LINE + _height(layout) + 2 * PAD for _, layout in panels) + PAD
    image = Image.new("RGB", (WIDTH + 2 * PAD, height), _COLOURS["bg"])
    draw = ImageDraw.Draw(image)
    y = PAD
    for title, layout in panels:
        draw.rectangle([PAD, y, PAD + WIDTH, y + LINE - 2], fill=_COLOURS["header"])
        draw.text((PAD + 8, y + 5), "▾ " + title, fill=_COLOURS["text"], font=font)
        y += LINE
        _draw(draw, font, layout, PAD + PAD, y + PAD, WIDTH - 2 * PAD)
        y += _height(layout) + 2 * PAD
    image.save(path)
