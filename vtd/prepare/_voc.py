"""labelImg Pascal-VOC XML: the image size and the named boxes of one annotated frame.

The structure labelImg writes (other fields are ignored)::

    <annotation>
      <filename>frame_0001.ppm</filename>
      <size><width>640</width><height>480</height><depth>3</depth></size>
      <object>
        <name>head</name>
        <bndbox><xmin>250</xmin><ymin>80</ymin><xmax>330</xmax><ymax>170</ymax></bndbox>
      </object>
      ...
    </annotation>

Coordinates are kept as written (labelImg writes integer pixels; floats are accepted). The file
is parsed with expat directly so that errors can name the line of the offending element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from vtd.data.errors import DataError

BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class _Element:
    tag: str
    line: int
    text: str = ""
    children: list[_Element] = field(default_factory=list)

    def find(self, tag: str) -> _Element | None:
        return next((child for child in self.children if child.tag == tag), None)


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in pixels
    line: int  # of the <object> element

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class VocAnnotation:
    path: Path
    filename: str
    size: tuple[int, int] | None  # width, height; None when labelImg wrote 0 (size unknown)
    objects: tuple[VocObject, ...]

    @property
    def names(self) -> list[str]:
        return sorted({obj.name for obj in self.objects})

    def only(self, name: str) -> VocObject:
        """The one object called `name`; an error naming the file if there is none or several."""
        matches = [obj for obj in self.objects if obj.name == name]
        if not matches:
            raise DataError(
                f"no object named {name!r}; objects here: {', '.join(self.names) or 'none'}",
                self.path,
            )
        if len(matches) > 1:
            lines = ", ".join(str(obj.line) for obj in matches)
            raise DataError(
                f"{len(matches)} objects named {name!r} (lines {lines}); expected one",
                self.path,
                matches[1].line,
            )
        return matches[0]


def _parse_tree(path: Path) -> _Element:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror}", path) from None
    parser = expat.ParserCreate()
    root = _Element("", 0)
    stack = [root]

    def start(tag: str, _attributes: dict[str, str]) -> None:
        element = _Element(tag, parser.CurrentLineNumber)
        stack[-1].children.append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def text(content: str) -> None:
        stack[-1].text += content

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        message = expat.ErrorString(error.code)
        raise DataError(
            f"not well-formed XML ({message}, column {error.offset + 1})", path, error.lineno
        ) from None
    return root


def _number(path: Path, element: _Element | None, parent: _Element, tag: str) -> float:
    if element is None:
        raise DataError(f"<{parent.tag}> has no <{tag}>", path, parent.line)
    try:
        value = float(element.text.strip())
    except ValueError:
        raise DataError(
            f"<{tag}> is {element.text.strip()!r}, not a number", path, element.line
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"<{tag}> is {element.text.strip()!r}, not a finite number", path, element.line
        )
    return value


def _read_object(path: Path, element: _Element, size: tuple[int, int] | None) -> VocObject:
    name_element = element.find("name")
    name = name_element.text.strip() if name_element is not None else ""
    if not name:
        raise DataError("<object> has no <name>", path, element.line)
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise DataError(f"<object> {name!r} has no <bndbox>", path, element.line)
    xmin, ymin, xmax, ymax = (_number(path, bndbox.find(tag), bndbox, tag) for tag in BOX_FIELDS)
    where = f"box of {name!r}"
    if xmax <= xmin or ymax <= ymin:
        raise DataError(
            f"{where} is empty or reversed: xmin {xmin:g}, xmax {xmax:g}, ymin {ymin:g}, "
            f"ymax {ymax:g} (need xmin < xmax and ymin < ymax)",
            path,
            bndbox.line,
        )
    if size is not None and (xmin < 0 or ymin < 0 or xmax > size[0] or ymax > size[1]):
        raise DataError(
            f"{where} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the "
            f"{size[0]}x{size[1]} image",
            path,
            bndbox.line,
        )
    return VocObject(name=name, box=(xmin, ymin, xmax, ymax), line=element.line)


def read_voc(path: Path) -> VocAnnotation:
    """Read one labelImg XML file; any problem is one `DataError` naming the file and line."""
    path = Path(path)
    document = _parse_tree(path)
    annotation = document.find("annotation")
    if annotation is None:
        top = document.children[0].tag if document.children else "nothing"
        raise DataError(f"expected <annotation> at the top, found <{top}>", path, 1)
    size_element = annotation.find("size")
    size: tuple[int, int] | None = None
    if size_element is not None:
        width = _number(path, size_element.find("width"), size_element, "width")
        height = _number(path, size_element.find("height"), size_element, "height")
        if width > 0 and height > 0:
            size = (int(width), int(height))
    filename_element = annotation.find("filename")
    filename = filename_element.text.strip() if filename_element is not None else ""
    objects = tuple(
        _read_object(path, child, size) for child in annotation.children if child.tag == "object"
    )
    return VocAnnotation(path=path, filename=filename, size=size, objects=objects)
