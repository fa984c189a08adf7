"""Per-date structure maps: where buildings, walls, fences and towers stand in one scene.

A detector turns a :class:`~sitewatch.scenes.SceneRaster` into :class:`StructureMaps`;
:mod:`sitewatch.changes` compares maps across dates. Maps are stored per scene in the
GeoPackage so a later run can date new scenes against what was seen before without
re-reading old imagery.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import deflate
from .grid import Grid
from .scenes import SceneRaster

#: Structure kinds, coarse to fine.
KINDS = ("building", "wall", "fence", "tower")

#: The ``kind`` values a detection may carry.
CHANGE_KINDS = tuple(f"{k}_{d}" for k in KINDS for d in ("new", "removed"))

#: Walls, fences and towers are only reported from imagery at least this fine (metres).
FINE_GSD_M = 1.2


#: Gaps a perimeter may have and still enclose (a gate, a tower at a corner), metres.
PERIMETER_GAP_M = 2.0


def enclosed(barrier: np.ndarray, res: float) -> np.ndarray:
    """Ground a barrier (walls, fences) closes in, once gaps up to :data:`PERIMETER_GAP_M` are closed.

    One rule for the detector (fences inside a wall) and for ``enclosed_area_m2``.
    """
    from scipy import ndimage

    if not barrier.any():
        return np.zeros(barrier.shape, bool)
    grown = ndimage.binary_dilation(barrier, iterations=max(1, int(round(PERIMETER_GAP_M / res))))
    return ndimage.binary_fill_holes(grown) & ~grown


def kinds_for_gsd(gsd_m: float) -> tuple[str, ...]:
    """Which kinds a scene of this resolution can show at all."""
    return KINDS if gsd_m <= FINE_GSD_M else ("building",)


@dataclass(frozen=True, eq=False)
class StructureMaps:
    """What one scene shows on the site grid.

    Attributes:
        grid: the site grid.
        kinds: kinds this scene can report (resolution-dependent, see :func:`kinds_for_gsd`).
        presence: kind to bool array, True where that structure stands.
        strength: kind to float32 array in 0..1, how strongly the detector saw it.
        observed: True where the ground was clearly seen (valid and not cloud).
        features: extra arrays the detector keeps for later dates (e.g. an alignment band).
        info: JSON-safe facts about how the maps were made (shift, radiometric fit, ...).
    """

    grid: Grid
    kinds: tuple[str, ...]
    presence: Mapping[str, np.ndarray]
    strength: Mapping[str, np.ndarray]
    observed: np.ndarray
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    info: Mapping[str, object] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Compressed, self-describing serialisation (``numpy.savez_compressed``'s format, read by ``np.load``)."""
        return _savez(self._arrays())

    def stored(self) -> tuple[bytes, StructureMaps]:
        """:meth:`to_bytes`, and the maps exactly as :meth:`from_bytes` will read those bytes back,
        without decompressing them: a run that stores a scene's maps and then dates changes over
        the stored maps need not decode what it has just encoded."""
        arrays = self._arrays()
        return _savez(arrays), self._from_arrays({k: np.array(v) for k, v in arrays.items()})

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {"observed": self.observed.astype(bool)}
        for k in self.kinds:
            arrays[f"presence.{k}"] = self.presence[k].astype(bool)
            arrays[f"strength.{k}"] = (np.clip(self.strength[k], 0, 1) * 255).astype(np.uint8)
        for k, v in self.features.items():
            arrays[f"feature.{k}"] = np.asanyarray(v)
        meta = {"grid": self.grid.to_dict(), "kinds": list(self.kinds), "info": dict(self.info)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def from_bytes(cls, data: bytes) -> StructureMaps:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls._from_arrays({n: z[n] for n in z.files})

    @classmethod
    def _from_arrays(cls, z: Mapping[str, np.ndarray]) -> StructureMaps:
        meta = json.loads(bytes(z["meta"]).decode())
        kinds = tuple(meta["kinds"])
        return cls(
            grid=Grid.from_dict(meta["grid"]),
            kinds=kinds,
            presence={k: z[f"presence.{k}"] for k in kinds},
            strength={k: z[f"strength.{k}"].astype(np.float32) / 255.0 for k in kinds},
            observed=z["observed"],
            features={n[8:]: z[n] for n in z if n.startswith("feature.")},
            info=meta.get("info", {}),
        )


#: zlib level of stored maps when written by ``zipfile`` (:func:`_savez_zipfile`): 1 encodes far faster
#: than numpy's default (6), for a few % more bytes.
MAPS_LEVEL = 1


def _savez(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``numpy.savez_compressed``'s format (a zip of ``<name>.npy`` members, deflated), its members
    deflated by :mod:`sitewatch.deflate` (ISA-L's when installed: 6-8 times zlib's speed) and the zip
    laid out here: ``zipfile`` can only deflate with zlib. ``np.load`` reads it as it reads numpy's
    own (the same arrays; tests/test_structures_bytes.py). Each member is dated 1980-01-01, so
    the same maps make the same bytes. Past the plain zip's 4 GiB limits: ``zipfile``'s zip64."""
    members, central, out = [], bytearray(), bytearray()
    for name, a in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=False)
        members.append((f"{name}.npy".encode(), buf.getbuffer()))
    for name, data in members:
        comp = deflate.compress(data, raw=True)
        offset, crc = len(out), deflate.crc32(data)
        if max(len(data), len(comp), offset + len(comp) + 30 + len(name)) >= 0xFFFFFFFF or len(members) >= 0xFFFF:
            return _savez_zipfile(arrays)
        sizes = (crc, len(comp), len(data), len(name), 0)
        # version 2.0, no flags, deflated, 00:00 on 1980-01-01 (DOS time 0, date 0x21)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, *sizes) + name + comp
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, *sizes,
                               0, 0, 0, 0, offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def _savez_zipfile(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``numpy.savez_compressed`` at :data:`MAPS_LEVEL` (numpy's own has no level): the same .npz."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=MAPS_LEVEL) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


class Detector(Protocol):
    """Turns a scene into structure maps. Swap implementations without touching flows."""

    name: str
    version: str

    def maps(self, raster: SceneRaster, history: Sequence[StructureMaps] = ()) -> StructureMaps:
        """Structure maps for ``raster``.

        ``history`` holds the maps of earlier scenes on the same grid, oldest first, so a
        detector can co-register and normalise against them.
        """
        ...
