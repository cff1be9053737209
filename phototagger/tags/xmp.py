"""Build, merge and strip phototagger's XMP; everything other tools wrote is kept.

The packet is parsed into an ElementTree and written back by a small serialiser of our own, so
every namespace keeps the prefix its document declared. What phototagger adds is recorded in its
own namespace (``phototagger:added``), which makes undo exact: only recorded values are removed,
and a value that was there before phototagger came is never recorded.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as SafeET

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xml": "http://www.w3.org/XML/1998/namespace",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "phototagger": "http://ns.phototagger.org/1.0/",
}
BAGS = ("dc:subject", "lr:hierarchicalSubject", "digiKam:TagsList")
LOCATION_SHOWN = "Iptc4xmpExt:LocationShown"
# one place, told by several properties: filled together or not at all, so that a photo never
# says City=Paris (the user's) and Country=India (phototagger's)
LOCATION_GROUP = (
    "Iptc4xmpCore:Location",
    "photoshop:City",
    "photoshop:State",
    "photoshop:Country",
    "Iptc4xmpCore:CountryCode",
)
PACKET_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
PACKET_TAIL = '\n<?xpacket end="w"?>'


class XmpError(ValueError):
    """A packet that does not parse as XMP (RDF/XML): it cannot be merged into safely."""


def q(name: str) -> str:
    """'dc:subject' -> '{http://purl.org/dc/elements/1.1/}subject'."""
    prefix, local = name.split(":", 1)
    return f"{{{NS[prefix]}}}{local}"


RDF_DESC, RDF_LI, RDF_ABOUT = q("rdf:Description"), q("rdf:li"), q("rdf:about")


@dataclass
class Entry:
    """What phototagger wants in the packet: simple values, bag values, one location struct."""

    simple: dict[str, str]  # property -> value, set only where no value exists yet (the
    # LOCATION_GROUP properties only where none of them has one)
    bags: dict[str, list[str]]  # property -> values, added where missing
    location: dict[str, str]  # LocationShown struct fields; LocationName is the key
    provenance: dict[str, str]  # phototagger:* simple properties
    top_k: list[tuple[str, float]]


@dataclass
class Provenance:
    """What phototagger wrote and why: the part of its record that callers read."""

    landmark: str
    slug: str
    confidence: float | None
    source: str
    model: str | None
    tagged_at: datetime | None
    gps_written: bool


@dataclass
class OurTags(Provenance):
    """phototagger's own record, as read back from a packet, with what undo needs."""

    added: list[str]
    exif_restore: tuple[int, int] | None
    exif_sha256: str | None = None  # of the EXIF block, when phototagger created all of it


class Packet:
    """An XMP document we can edit and write back with its own prefixes."""

    def __init__(self, root: ET.Element, prefixes: dict[str, str]):
        self.root = root
        self.prefixes = prefixes  # uri -> prefix, as the document declared them
        found = root if root.tag == q("rdf:RDF") else root.find(q("rdf:RDF"))
        if found is None:
            raise XmpError("no rdf:RDF element")
        self.rdf = found
        self._own_desc: ET.Element | None = None

    @classmethod
    def empty(cls) -> Packet:
        root = ET.Element(q("x:xmpmeta"), {q("x:xmptk"): "phototagger"})
        ET.SubElement(root, q("rdf:RDF"))
        return cls(root, {})

    @classmethod
    def parse(cls, data: bytes) -> Packet:
        prefixes: dict[str, str] = {}
        try:
            events = SafeET.iterparse(io.BytesIO(data.strip(b"\x00 \t\r\n")), ("start-ns",))
            for _, (prefix, uri) in events:
                prefixes.setdefault(uri, prefix)
            root = events.root
        except Exception as error:  # defusedxml and expat raise several types
            raise XmpError(f"XMP does not parse: {error}") from None
        if root is None:
            raise XmpError("XMP is empty")
        return cls(root, prefixes)

    def descriptions(self) -> list[ET.Element]:
        return [d for d in self.rdf if d.tag == RDF_DESC]

    def is_empty(self) -> bool:
        return not any(_has_content(d) for d in self.descriptions())

    # -- properties ----------------------------------------------------------------------
    def _find(self, name: str) -> tuple[ET.Element, ET.Element | None] | None:
        """(description, element) holding a property; element None for attribute form."""
        for desc in self.descriptions():
            if q(name) in desc.attrib:
                return desc, None
            element = desc.find(q(name))
            if element is not None:
                return desc, element
        return None

    def get(self, name: str) -> str | None:
        found = self._find(name)
        if found is None:
            return None
        desc, element = found
        if element is None:
            return desc.attrib[q(name)]
        alt = element.find(q("rdf:Alt"))
        if alt is not None:
            return next((li.text or "" for li in alt.iter(RDF_LI)), None)
        return element.text or ""

    def remove(self, name: str) -> None:
        found = self._find(name)
        if found is not None:
            desc, element = found
            if element is None:
                del desc.attrib[q(name)]
            else:
                desc.remove(element)

    def _own(self) -> ET.Element:
        """phototagger's own rdf:Description, where properties it creates are put.

        It is about what the packet's other descriptions are about: XMP requires one
        rdf:about value throughout (Windows Photo Gallery, for one, writes a uuid there).
        """
        if self._own_desc is None or self._own_desc not in self.descriptions():
            abouts = (d.get(RDF_ABOUT) for d in self.descriptions())
            about = next((a for a in abouts if a is not None), "")
            self._own_desc = ET.SubElement(self.rdf, RDF_DESC, {RDF_ABOUT: about})
            self._own_desc.text, self._own_desc.tail = "\n", "\n"
        return self._own_desc

    def _add_child(self, desc: ET.Element, name: str) -> ET.Element:
        element = ET.SubElement(desc, q(name))
        element.tail = "\n"
        return element

    def set_simple(self, name: str, value: str) -> None:
        self._add_child(self._own(), name).text = value

    def bag(self, name: str, create: bool) -> ET.Element | None:
        found = self._find(name)
        if found is None or found[1] is None:
            if not create or found is not None:
                return None
            container = ET.SubElement(self._add_child(self._own(), name), q("rdf:Bag"))
            return container
        element = found[1]
        for kind in ("rdf:Bag", "rdf:Seq"):
            container = element.find(q(kind))
            if container is not None:
                return container
        return None

    def bag_items(self, name: str) -> list[ET.Element]:
        container = self.bag(name, create=False)
        return [] if container is None else [li for li in container if li.tag == RDF_LI]

    def drop_if_empty(self, name: str) -> None:
        found = self._find(name)
        if found and found[1] is not None and next(found[1].iter(RDF_LI), None) is None:
            found[0].remove(found[1])

    # -- serialisation -------------------------------------------------------------------
    def to_bytes(self, wrap: bool = True) -> bytes:
        used = _namespaces(self.root)
        known = {uri: prefix for prefix, uri in NS.items()}
        names: dict[str, str] = {}
        # URIs the document named first, so that their prefixes are theirs to keep
        for uri in sorted(used, key=lambda u: (u not in self.prefixes, u)):
            prefix = self.prefixes.get(uri) or known.get(uri)
            if not prefix or prefix == "xml" or prefix in names.values():
                prefix = next(
                    f"ns{i}" for i in range(1, 10_000) if f"ns{i}" not in names.values()
                )
            names[uri] = prefix
        names[NS["xml"]] = "xml"
        out: list[str] = []
        _write(self.root, names, out, declare=True)
        text = "".join(out)
        return ((PACKET_HEAD + text + PACKET_TAIL) if wrap else text).encode("utf-8")


def _has_content(desc: ET.Element) -> bool:
    return any(k != RDF_ABOUT for k in desc.attrib) or len(desc) > 0


def _namespaces(root: ET.Element) -> set[str]:
    used = set()
    for element in root.iter():
        for name in (element.tag, *element.attrib):
            if name.startswith("{"):
                used.add(name[1:].split("}", 1)[0])
    used.discard(NS["xml"])
    return used


def _name(clark: str, names: dict[str, str]) -> str:
    if not clark.startswith("{"):
        return clark
    uri, local = clark[1:].split("}", 1)
    return f"{names[uri]}:{local}"


def _write(element: ET.Element, names: dict[str, str], out: list[str], declare: bool) -> None:
    attrs = []
    if declare:
        attrs += [f"xmlns:{p}={quoteattr(u)}" for u, p in names.items() if p != "xml"]
    attrs += [f"{_name(k, names)}={quoteattr(v)}" for k, v in element.attrib.items()]
    tag = _name(element.tag, names)
    out.append(f"<{tag}{''.join(' ' + a for a in attrs)}")
    if element.text is None and len(element) == 0:
        out.append("/>")
    else:
        out.append(">" + escape(element.text or ""))
        for child in element:
            _write(child, names, out, declare=False)
        out.append(f"</{tag}>")
    out.append(escape(element.tail or ""))


# -- what phototagger adds and removes ----------------------------------------------------
def _li_text(li: ET.Element) -> str:
    return (li.text or "").strip()


def _location_name(li: ET.Element) -> str | None:
    holder = li.find(RDF_DESC) if li.find(RDF_DESC) is not None else li
    element = holder.find(q("Iptc4xmpExt:LocationName"))
    if element is None:
        value = holder.get(q("Iptc4xmpExt:LocationName"))
        return value.strip() if value else None
    alt = element.find(q("rdf:Alt"))
    if alt is None:
        return (element.text or "").strip()
    return next((_li_text(x) for x in alt if x.tag == RDF_LI), None)


def merge(
    packet: Packet,
    entry: Entry,
    exif_restore: tuple[int, int] | None,
    notes: list[str],
    place_elsewhere: bool = False,
) -> None:
    """Add entry to a packet that holds no phototagger data (strip first); record what was new.

    ``notes`` go into the record as they are (e.g. "segment:xmp": the packet itself was new).
    ``place_elsewhere``: the photo's other metadata (a sidecar, or the file beside a sidecar)
    already names a place, so this packet gets none of phototagger's.
    """
    added: list[str] = list(notes)
    users_place = place_elsewhere or any(packet.get(name) is not None for name in LOCATION_GROUP)
    for name, value in entry.simple.items():
        if name in LOCATION_GROUP and users_place:
            continue
        if packet.get(name) is None:
            packet.set_simple(name, value)
            added.append(f"{name}={value}")
    for name, values in entry.bags.items():
        present = {_li_text(li) for li in packet.bag_items(name)}
        for value in values:
            if value in present:
                continue
            container = packet.bag(name, create=True)
            if container is None:  # a property of another shape: leave it alone
                break
            ET.SubElement(container, RDF_LI).text = value
            added.append(f"{name}={value}")
            present.add(value)
    name = entry.location["LocationName"]
    shown = {_location_name(li) for li in packet.bag_items(LOCATION_SHOWN)}
    container = packet.bag(LOCATION_SHOWN, create=True) if name not in shown else None
    if container is not None:
        li = ET.SubElement(container, RDF_LI, {q("rdf:parseType"): "Resource"})
        for field, value in entry.location.items():
            element = ET.SubElement(li, q(f"Iptc4xmpExt:{field}"))
            if field == "LocationName":
                alt = ET.SubElement(element, q("rdf:Alt"))
                ET.SubElement(alt, RDF_LI, {q("xml:lang"): "x-default"}).text = value
            else:
                element.text = value
        added.append(f"{LOCATION_SHOWN}={name}")
    own = packet._own()
    for key, value in entry.provenance.items():
        packet._add_child(own, f"phototagger:{key}").text = value
    if exif_restore is not None:
        offset, length = exif_restore
        packet._add_child(own, "phototagger:exifRestore").text = f"{offset} {length}"
    if entry.top_k:
        seq = ET.SubElement(packet._add_child(own, "phototagger:topK"), q("rdf:Seq"))
        for label, probability in entry.top_k:
            ET.SubElement(seq, RDF_LI).text = f"{probability:.4f} {label}"
    bag = ET.SubElement(packet._add_child(own, "phototagger:added"), q("rdf:Bag"))
    for item in added:
        ET.SubElement(bag, RDF_LI).text = item


def strip(packet: Packet) -> bool:
    """Remove exactly what phototagger recorded as added, then its own record; True if any."""
    record = read(packet)
    if record is None:
        return False
    for item in record.added:
        name, _, value = item.partition("=")
        if name == LOCATION_SHOWN:
            for li in packet.bag_items(name):
                if _location_name(li) == value:
                    packet.bag(name, create=False).remove(li)
                    break
            packet.drop_if_empty(name)
        elif name in BAGS:
            for li in packet.bag_items(name):
                if _li_text(li) == value:
                    packet.bag(name, create=False).remove(li)
                    break
            packet.drop_if_empty(name)
        elif ":" in name and name.split(":", 1)[0] in NS and packet.get(name) == value:
            packet.remove(name)
    for desc in packet.descriptions():
        for key in [k for k in desc.attrib if k.startswith("{" + NS["phototagger"])]:
            del desc.attrib[key]
        for child in [c for c in desc if c.tag.startswith("{" + NS["phototagger"])]:
            desc.remove(child)
        if not _has_content(desc):
            packet.rdf.remove(desc)
    return True


def read(packet: Packet) -> OurTags | None:
    """phototagger's record in a packet, or None when there is none."""
    slug = packet.get("phototagger:slug")
    if slug is None:
        return None
    confidence = packet.get("phototagger:confidence")
    tagged_at = packet.get("phototagger:taggedAt")
    restore = (packet.get("phototagger:exifRestore") or "").split()
    try:
        when = datetime.fromisoformat(tagged_at) if tagged_at else None
        score = float(confidence) if confidence else None
        exif_restore = (int(restore[0]), int(restore[1])) if len(restore) == 2 else None
    except ValueError:
        when, score, exif_restore = None, None, None
    return OurTags(
        landmark=packet.get("phototagger:landmark") or slug,
        slug=slug,
        confidence=score,
        source=packet.get("phototagger:source") or "",
        model=packet.get("phototagger:model") or None,
        tagged_at=when,
        gps_written=(packet.get("phototagger:gpsWritten") or "none") != "none",
        added=[_li_text(li) for li in packet.bag_items("phototagger:added")],
        exif_restore=exif_restore,
        exif_sha256=packet.get("phototagger:exifSha256") or None,
    )


def has_position(packet: Packet) -> bool:
    """Whether the packet holds an XMP GPS position phototagger did not write."""
    record = read(packet)
    ours = set(record.added) if record else set()
    value = packet.get("exif:GPSLatitude")
    return value is not None and f"exif:GPSLatitude={value}" not in ours


def has_place(packet: Packet) -> bool:
    """Whether the packet names a place (city, country...) phototagger did not write."""
    record = read(packet)
    ours = set(record.added) if record else set()
    return any(
        (value := packet.get(name)) is not None and f"{name}={value}" not in ours
        for name in LOCATION_GROUP
    )


def gps_coordinate(value: float, positive: str, negative: str) -> str:
    """XMP GPSCoordinate text, 'DDD,MM.mmmmk' (e.g. '48,51.5040N')."""
    ref = positive if value >= 0 else negative
    degrees = int(abs(value))
    return f"{degrees},{(abs(value) - degrees) * 60:.4f}{ref}"
