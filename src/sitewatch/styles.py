"""QGIS layer styles stored in the GeoPackage (the ``layer_styles`` table QGIS reads).

Opening the file in QGIS then shows detections coloured by kind, with the fill and outline
saying the review status, instead of QGIS's random single colour.
"""

from __future__ import annotations

import sqlite3
import uuid
import xml.etree.ElementTree as ET

#: Paired colours (ColorBrewer Paired): dark for new, light for removed.
KIND_COLOURS = {
    "building_new": "227,26,28", "building_removed": "251,154,153",
    "wall_new": "31,78,158", "wall_removed": "166,206,227",
    "fence_new": "106,61,154", "fence_removed": "202,178,214",
    "tower_new": "255,127,0", "tower_removed": "253,191,111",
}

#: How status shows: (fill alpha, outline style, outline width mm).
STATUS_LOOK = {"pending": (70, "dash", 0.5), "confirmed": (170, "solid", 0.9), "rejected": (0, "dot", 0.3)}

_LAYER_STYLES_SQL = (
    'CREATE TABLE "layer_styles" ("id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "f_table_catalog" TEXT(256), '
    '"f_table_schema" TEXT(256), "f_table_name" TEXT(256), "f_geometry_column" TEXT(256), "styleName" TEXT(30), '
    '"styleQML" TEXT, "styleSLD" TEXT, "useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), '
    '"ui" TEXT(30), "update_time" DATETIME DEFAULT (strftime(\'%Y-%m-%dT%H:%M:%fZ\',\'now\')))'
)


def _opt(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, "Option", name=name, type="QString", value=value)


def _fill_symbol(parent: ET.Element, name: str, fill: str, outline: str, style: str, width: float,
                 fill_style: str = "solid") -> None:
    sym = ET.SubElement(parent, "symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
    opts = ET.SubElement(layer, "Option", type="Map")
    for k, v in (("color", fill), ("outline_color", outline), ("outline_style", style),
                 ("outline_width", f"{width}"), ("outline_width_unit", "MM"), ("style", fill_style),
                 ("joinstyle", "miter")):
        _opt(opts, k, v)


def _qml(renderer: ET.Element, geometry_type: int = 2) -> str:
    root = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    root.append(renderer)
    ET.SubElement(root, "layerGeometryType").text = str(geometry_type)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def detections_qml() -> str:
    """Rule-based renderer: one rule per kind and status."""
    r = ET.Element("renderer-v2", type="RuleRenderer", forceraster="0", symbollevels="0", enableorderby="0")
    rules = ET.SubElement(r, "rules", key="{%s}" % uuid.UUID(int=1))
    symbols = ET.SubElement(r, "symbols")
    i = 0
    for kind, rgb in KIND_COLOURS.items():
        for status, (alpha, style, width) in STATUS_LOOK.items():
            label = f"{kind.replace('_', ' ')} ({status})"
            ET.SubElement(rules, "rule", key="{%s}" % uuid.UUID(int=100 + i), symbol=str(i), label=label,
                          filter=f"\"kind\" = '{kind}' AND \"status\" = '{status}'")
            outline = f"{rgb},255" if status != "rejected" else "120,120,120,255"
            _fill_symbol(symbols, str(i), f"{rgb},{alpha}", outline, style, width,
                         "solid" if alpha else "no")
            i += 1
    return _qml(r)


def outline_qml(rgb: str, style: str, width: float) -> str:
    """A single-symbol outline (sites, scene footprints)."""
    r = ET.Element("renderer-v2", type="singleSymbol", forceraster="0", symbollevels="0", enableorderby="0")
    symbols = ET.SubElement(r, "symbols")
    _fill_symbol(symbols, "0", f"{rgb},0", f"{rgb},255", style, width, "no")
    return _qml(r)


STYLES = {
    "detections": ("detections by kind and status", detections_qml),
    "sites": ("sites outline", lambda: outline_qml("255,221,0", "solid", 1.0)),
    "scenes": ("scene footprints", lambda: outline_qml("90,90,90", "dash", 0.3)),
}


def install(con: sqlite3.Connection) -> None:
    """Create ``layer_styles`` (registered as an attributes table) and a default style per layer."""
    con.execute(_LAYER_STYLES_SQL)
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description) "
                "VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles')")
    for table, (name, make) in STYLES.items():
        con.execute('INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, '
                    '"styleName", "styleQML", "styleSLD", "useAsDefault", description, owner, ui) '
                    "VALUES ('', '', ?, 'geom', ?, ?, '', 1, ?, 'sitewatch', '')",
                    (table, name, make(), f"sitewatch default style for {table}"))
