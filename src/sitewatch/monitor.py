"""One monitoring run: sites and imagery in, scenes, maps, metrics and detections out.

Plain functions, no Prefect: ``pipelines/monitor.py`` wires :func:`monitor_site` into one
task per site. Every step is idempotent against the GeoPackage: scenes already stored are
skipped, reviewed detections are kept as they are, so re-running over the same imagery adds
nothing and a run killed half-way is finished by the next one (pending detections no one
reviewed are re-dated or withdrawn to match: :mod:`sitewatch.events`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from contextlib import suppress
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from . import __version__, rebase
from .changes import Observation, track
from .detections import detection_record
from .errors import ImageryError, NotFoundError, SceneError, SitesError, StoreError
from .events import claim, clear_after, log_lines, reconcile, remade_at, same_event  # noqa: F401 (same_event: monitor's before)
from .grid import site_resolution
from .progress import reporter
from .scenerecords import metrics_record, reflectance_steps, scene_record
from .sceneflow import Held, Lane, made, quicklook_png
from .sceneflow import read_ahead as _read_ahead
from .scenes import SceneRaster, SceneRef
from .sites import Site
from .store import DetectionRecord, RunParams, Store
from .structures import Detector, StructureMaps
from .vrt import image_href, vrt_folder

log = logging.getLogger("sitewatch.monitor")

#: Below this fraction of clear ground over the site a scene is recorded as unusable.
MIN_VALID_FRACTION = 0.05
#: A scene with more of the site hidden than this cannot show a fall in security level.
MAX_HIDDEN_FOR_FALL = 0.005


@dataclass(frozen=True)
class MonitorParams(RunParams):
    """What one run was asked to do (stored in ``runs.params``)."""

    sites: str
    imagery: str
    db: str = "findings.gpkg"
    collection: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    #: a trained change model (ONNX, see :mod:`sitewatch.changemodel`), beside the default detector
    change_model: str | None = None
    #: the change model instead of the default detector (no structure maps, metrics or levels)
    model_only: bool = False
    #: Only these sites of the file (``--site``); None: every site.
    site_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SiteResult:
    """What a run did at one site."""

    site_id: str
    scenes_found: int = 0
    scenes_new: int = 0
    scenes_unusable: int = 0
    failures: tuple[str, ...] = ()
    detections_new: int = 0
    unusable: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: what the user should know that is not a failure (the site matched no scene)
    notes: tuple[str, ...] = ()
    #: pending, unreviewed detections this run withdrew: later clear imagery refuted them
    withdrawn: tuple[str, ...] = ()
    #: what each withdrawn detection claimed (:func:`sitewatch.events.claim`), kept in ``runs.summary``
    withdrawn_claims: tuple[Mapping[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class RunSummary:
    """A whole run, for the ``runs`` layer and the terminal."""

    run_id: str
    status: str
    sites: tuple[SiteResult, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sites": len(self.sites),
            "scenes_found": sum(s.scenes_found for s in self.sites),
            "scenes_new": sum(s.scenes_new for s in self.sites),
            "scenes_unusable": sum(s.scenes_unusable for s in self.sites),
            "scenes_failed": sum(len(s.failures) for s in self.sites),
            "detections_new": sum(s.detections_new for s in self.sites),
            "detections_withdrawn": sum(len(s.withdrawn) for s in self.sites),
            "withdrawn": [i for s in self.sites for i in s.withdrawn],
            "withdrawn_claims": [dict(c) for s in self.sites for c in s.withdrawn_claims],
            "failures": [f for s in self.sites for f in s.failures],
            "unusable": [u for s in self.sites for u in s.unusable],
            "warnings": [w for s in self.sites for w in s.warnings],
            "notes": [n for s in self.sites for n in s.notes],
        }


# --- the work ------------------------------------------------------------------------------

#: Reads one scene over a site: ``read(ref, aoi, site_res=...)``, ``site_res`` the resolutions the
#: site's scenes are already on (so every scene of a site lands on its one grid).
Reader = Callable[..., SceneRaster]


def _scene_overlaps(site: Site, ref: SceneRef) -> bool:
    return ref.footprint is None or ref.footprint.intersects(site.geometry)


def monitor_site(store: Store, site: Site, scenes: Iterable[SceneRef], detector: Detector, run_id: str,
                 read: Reader | None = None) -> SiteResult:
    """Process one site's new scenes, then re-date its changes over its whole stored history."""
    if read is None:
        from .reader import read_scene

        # scl first: a scene it shows unusable is not read further (it would be unusable anyway)
        read = partial(read_scene, min_valid=MIN_VALID_FRACTION)
    from .catalog import MAX_CLOUD_COVER, same_acquisition

    found = sorted((s for s in scenes if _scene_overlaps(site, s)), key=lambda s: (s.acquired, s.scene_id))
    site_scenes = store.scenes(site.site_id)
    done = {r.scene_id for r in site_scenes if r.status != "failed"}  # observed or unusable: no more work
    stored = [SceneRef(r.scene_id, r.source, r.acquired, {}, properties=r.properties)
              for r in site_scenes if r.status != "failed"]
    # another tile or copy of an acquisition already stored for this site is that acquisition again
    todo = [s for s in found if s.scene_id not in done
            and not any(o.scene_id != s.scene_id and same_acquisition(o, s) for o in stored)]
    def overcast(ref: SceneRef) -> bool:
        cc = ref.properties.get("eo:cloud_cover")
        return isinstance(cc, (int, float)) and not isinstance(cc, bool) and cc > MAX_CLOUD_COVER

    stored_maps = store.scene_maps(site.site_id)
    kept = [(rec, StructureMaps.from_bytes(blob)) for rec, blob in stored_maps]
    # scenes older than the site's change reference: its maps are remade from them (sitewatch.rebase)
    rb = rebase.plan(site.site_id, kept, [r for r in todo if not overcast(r)], found)
    todo = sorted([r for r in todo if r.scene_id not in rb.held] + list(rb.remap), key=lambda s: (s.acquired, s.scene_id))
    history: dict[float, list[StructureMaps]] = defaultdict(list)
    for rec, maps in kept:
        if float(rec.grid_res_m or 0.0) not in rb.resolutions:
            history[float(rec.grid_res_m or 0.0)].append(maps)
    # the site's grid, chosen by its first scene and kept for every later one, run after run
    site_res = list(dict.fromkeys(float(r.grid_res_m) for r in site_scenes if r.grid_res_m))
    rep = reporter()
    task = rep.start(f"{site.site_id}", total=len(todo))
    failures: list[str] = []
    unusable: list[str] = []
    new = 0
    # scene_id -> (maps bytes as stored, those maps decoded): the stored maps decoded above and this
    # run's new ones, so that dating below decodes none of them a second time
    readback: dict[str, tuple[bytes, StructureMaps]] = {
        rec.scene_id: (blob, maps) for (rec, blob), (_, maps) in zip(stored_maps, kept)}
    for ref in (r for r in todo if overcast(r)):
        why = f"eo:cloud_cover {ref.properties['eo:cloud_cover']:g}% > {MAX_CLOUD_COVER:g}%: overcast, not read"
        unusable.append(f"site {site.site_id}, scene {ref.scene_id}: {why}")
        store.save_scene(scene_record(site, ref, run_id, status="unusable", error=why))
        rep.advance(task)
    lane = Lane()
    held: Held | None = None  # the scene mapped last: saved once the next one's detector has run

    def save_held() -> None:
        """Store the held scene (one transaction, as every scene): its evidence, made on the lane
        while the next scene was mapped, is waited for here."""
        nonlocal held
        if held is None:
            return
        h, held = held, None
        m = h.made.result()
        readback[h.ref.scene_id] = (m.blob, m.back)
        # a change model alone maps no structures: no metrics rather than a false 0 m² built
        store.save_scene(m.record, maps=m.blob, detector=f"{detector.name} {detector.version}",
                         metrics=metrics_record(site.site_id, h.ref, h.maps, run_id) if h.maps.kinds else None,
                         quicklook=h.quicklook.result(), grid=h.grid)
        rep.advance(task)

    def save(record: Any) -> None:  # any other scene's row: after the held one, in the scenes' order
        save_held()
        store.save_scene(record)
        rep.advance(task)

    ahead = _read_ahead(lambda r: read(r, site.geometry, site_res=tuple(site_res)),  # type: ignore[misc]
                        [r for r in todo if not overcast(r)])
    try:
        for ref, got in ahead:
            rep.update(task, description=f"{site.site_id} {ref.date}")
            if isinstance(got, SceneError):
                failures.append(f"site {site.site_id}, scene {ref.scene_id}: {got}")
                save(scene_record(site, ref, run_id, status="failed", error=str(got)))
                continue
            raster = got
            if raster.grid.res != site_resolution(raster.native_gsd_m, tuple(site_res)):
                # read ahead before an earlier scene chose the site's grid: read again on that grid
                try:
                    raster = read(ref, site.geometry, site_res=tuple(site_res))
                except SceneError as exc:
                    failures.append(f"site {site.site_id}, scene {ref.scene_id}: {exc}")
                    save(scene_record(site, ref, run_id, status="failed", error=str(exc)))
                    continue
            if raster.grid.res not in site_res:
                site_res.append(raster.grid.res)
            if raster.valid_fraction < MIN_VALID_FRACTION:
                why = f"only {raster.valid_fraction:.1%} of the site is clear ground (cloud or no data)"
                if not raster.bands:
                    why += "; by scl, its bands not read"
                unusable.append(f"site {site.site_id}, scene {ref.scene_id}: {why}")
                save(replace(scene_record(site, ref, run_id, raster, status="unusable", error=why),
                             image_href=image_href(ref, vrt_folder(store.path))))
                continue
            ql = lane.submit(quicklook_png, raster)  # made while the detector runs
            earlier = history[raster.grid.res]
            try:
                maps = detector.maps(raster, tuple(earlier))
            except SceneError as exc:  # e.g. a band the change model needs is missing from this scene
                failures.append(f"site {site.site_id}, scene {ref.scene_id}: {exc}")
                save(scene_record(site, ref, run_id, status="failed", error=str(exc)))
                continue
            shift = maps.info.get("shift_px")
            if isinstance(shift, (list, tuple)) and len(shift) == 2:  # what co-registration moved the scene by
                raster = replace(raster, shift_px=(float(shift[0]), float(shift[1])))
            record = partial(scene_record, site, ref, run_id, raster)
            # the record and the maps' bytes, made while the next scene's detector runs
            job = lane.submit(made, record, image_href(ref, vrt_folder(store.path)), maps)
            save_held()  # the scene before: its evidence was made while this one's detector ran
            held = Held(ref, maps, raster.grid.to_dict(), ql, job)
            earlier.append(maps)
            new += ref not in rb.remap  # a scene mapped again is not a new one
        save_held()
    except BaseException:  # what was mapped before the error is kept, as a step-by-step run keeps it
        with suppress(Exception):
            save_held()
        raise
    finally:
        lane.close()
    rep.finish(task)
    dated = redate_site(store, site.site_id, run_id, model=getattr(detector, "model", None), stored=readback,
                        remade=rb.resolutions)
    steps = tuple(reflectance_steps(store.scenes(site.site_id, status="observed"), {s.scene_id for s in todo}))
    notes = tuple(f"site {site.site_id}: {len(rb.remap)} stored scene(s) at {r:g} m mapped again from the "
                  f"older scene(s) this run found (the site's change reference is now its oldest scene)"
                  for r in sorted(rb.resolutions))
    return SiteResult(site.site_id, len(found), new, len(unusable), tuple(failures), dated.added,
                      tuple(unusable), steps + rb.why, notes, withdrawn=dated.withdrawn, withdrawn_claims=dated.claims)


class Redated(NamedTuple):
    """What re-judging a site's stored maps wrote: detections added or superseded, and those withdrawn."""

    added: int
    #: what each withdrawn detection claimed (:func:`sitewatch.events.claim`)
    claims: tuple[Mapping[str, Any], ...] = ()

    @property
    def withdrawn(self) -> tuple[str, ...]:
        return tuple(c["detection_id"] for c in self.claims)


def redate_site(store: Store, site_id: str, run_id: str, model: Any = None,
                stored: Mapping[str, tuple[bytes, StructureMaps]] | None = None,
                remade: Collection[float] = ()) -> Redated:
    """Track changes over every stored observation of a site; store the ones not yet stored,
    supersede or withdraw pending ones the judgement over all scenes dates better or refutes
    (:mod:`sitewatch.events`), so a run after a partial one ends as one uninterrupted run would.

    ``model`` (a :class:`~sitewatch.changemodel.ChangeModel`) re-runs pairs whose stored
    change probability was made against another scene (one that arrived late). ``stored``:
    scene_id to the maps bytes this run has just stored and those maps as :meth:`StructureMaps.stored`
    reads them back: used instead of decoding the bytes again while the file holds the same bytes.
    ``remade``: grid resolutions whose maps this run made again from an older reference
    (:mod:`sitewatch.rebase`): the detector's open claims there that are not made again go."""
    by_res: dict[float, list[Observation]] = defaultdict(list)
    for rec, blob in store.scene_maps(site_id):
        hit = (stored or {}).get(rec.scene_id)
        maps = hit[1] if hit is not None and hit[0] == blob else StructureMaps.from_bytes(blob)
        by_res[float(rec.grid_res_m or 0.0)].append(Observation(rec.scene_id, rec.acquired, maps))
    records: list[DetectionRecord] = []
    for obs in by_res.values():
        if len(obs) < 2:
            continue
        grid = obs[0].maps.grid
        made_by = store.scene_detectors(site_id)
        records += [detection_record(site_id, c, grid, run_id, made_by.get(c.after_scene_id, ""))
                    for c in track(obs)]
        if any("model" in o.maps.info for o in obs):
            from .changemodel import model_detection_records

            records += model_detection_records(site_id, obs, run_id, model)
    stored = store.detections(site_id=site_id)
    reviewed = store.reviewed_at(site_id) if stored else set()
    todo = reconcile(records, stored, reviewed,
                     clear_after(by_res, {model.sha256} if model is not None else ()), remade_at(remade))
    # (a write with nothing to write still costs a transaction and its syncs: skipped)
    added = (store.save_detections(todo.fresh) if todo.fresh else 0) + \
        (store.supersede_detections(todo.better) if todo.better else 0)
    claims: tuple[Mapping[str, Any], ...] = ()
    if todo.withdraw:  # the mirror of superseding: refuted pending claims go, named in the run's summary
        try:
            store.withdraw_detections(todo.withdraw)
            gone = set(todo.withdraw)
            claims = tuple(claim(d) for d in stored if d.detection_id in gone)
            for line in log_lines(site_id, todo.withdraw):
                log.info(line)
        except (StoreError, NotFoundError) as exc:  # reviewed meanwhile: it stays; the next run judges again
            log.warning("site %s: nothing withdrawn: %s", site_id, exc)
    # security level per scene, from the same maps (needs every scene of the site: levels compare layouts)
    from .security import levels_over_time, store_updates

    maps = {o.scene_id: o.maps for obs in by_res.values() for o in obs}
    rows = store.metrics(site_id)  # read once: nothing is written to them before the loop below
    levels = store_updates(levels_over_time(rows, maps))
    # A perimeter half under cloud is not a fall in security: a lower level from a partly hidden
    # scene is not claimed (a fall is only reported from scenes that saw the whole site).
    last = None
    for rec in sorted(rows, key=lambda r: (r.acquired, r.scene_id)):
        level, why = levels.get(rec.scene_id, (None, ""))
        m = maps.get(rec.scene_id)
        hidden = 1 - float(m.observed.mean()) if m is not None else 0.0
        if level is not None and last is not None and level < last and hidden > MAX_HIDDEN_FOR_FALL:
            levels[rec.scene_id] = (None, f"not assessed: {hidden:.1%} of the site hidden by cloud or no data, "
                                          f"and a fall from level {last} cannot be told from what is hidden")
        elif level is not None:
            last = level
    if levels:  # a change model alone measures nothing: no level to store
        store.update_security(site_id, levels)
    return Redated(added, claims)


def finish(store: Store, run_id: str, results: Sequence[SiteResult]) -> RunSummary:
    status = "completed" if all(r.ok for r in results) else "partial"
    summary = RunSummary(run_id, status, tuple(results))
    store.finish_run(run_id, status, summary.as_dict())
    return summary


def select_sites(sites: Sequence[Site], site_ids: Sequence[str] | None, source: str) -> list[Site]:
    """The sites asked for by id, in the file's order; an id the file lacks is unusable input."""
    if not site_ids:
        return list(sites)
    known = {s.site_id for s in sites}
    missing = [i for i in dict.fromkeys(site_ids) if i not in known]
    if missing:
        raise SitesError(f"{source}: no site {', '.join(repr(i) for i in missing)} "
                         f"(the file has {len(known)} sites)")
    wanted = set(site_ids)
    return [s for s in sites if s.site_id in wanted]


def prepare(params: MonitorParams, sites: Sequence[Site] | None = None) -> tuple[Store, list[Site], str]:
    """Read and check every input before writing anything; then register the sites and the run.

    ``sites`` given (the Python API's GeoDataFrame, already checked) replaces reading ``params.sites``.
    """
    from .catalog import probe
    from .sites import read_sites

    sites = select_sites(read_sites(params.sites) if sites is None else sites, params.site_ids, params.sites)
    probe(params.imagery, collection=params.collection)
    if params.change_model:  # a model file that does not meet the contract is refused before any write
        from .changemodel import open_model

        open_model(params.change_model)
    elif params.model_only:
        from .errors import InputError

        raise InputError("model_only needs a change model (--change-model PATH.onnx)")
    db = Path(params.db)
    store = Store(db)
    store.upsert_sites(sites)
    run_id = store.start_run("monitor", params.as_dict())
    return store, sites, run_id


def run_site(params: MonitorParams, site: Site, run_id: str, detector: Detector | None = None) -> SiteResult:
    """Discover and process one site: the unit of work of the monitor flow and of :func:`run` alike,
    on one BLAS thread (:func:`sitewatch.blas.one_blas_thread`: sites run side by side)."""
    from .blas import one_blas_thread

    with one_blas_thread():
        return _run_site(params, site, run_id, detector)


def _run_site(params: MonitorParams, site: Site, run_id: str, detector: Detector | None) -> SiteResult:
    from .catalog import discover
    from .detect import default_detector

    try:
        found = discover(params.imagery, collection=params.collection, aoi=site.geometry,
                         since=params.since, until=params.until, per_acquisition=True)
    except (SceneError, ImageryError) as exc:
        return SiteResult(site.site_id, failures=(f"site {site.site_id}: imagery search failed: {exc}",))
    if detector is None:
        detector = default_detector()
        if params.change_model:
            from .changemodel import ModelDetector, open_model

            detector = ModelDetector(open_model(params.change_model), None if params.model_only else detector)
    result = monitor_site(Store(params.db), site, found.scenes, detector, run_id)
    if found.problems:  # items the source lists but that cannot be used: named, and the run is partial
        result = replace(result, failures=(*result.failures, *(f"site {site.site_id}: {p}" for p in found.problems)))
    if not found.scenes:  # named, with where it is: "0 scenes found" alone hides a site in the wrong place
        from .extent import no_scene_note

        result = replace(result, notes=(no_scene_note(f"site {site.site_id}", site.geometry, params.imagery,
                                                      collection=params.collection, since=params.since,
                                                      until=params.until),))
    return result


def run(params: MonitorParams, map_sites: Callable[[Callable[[Site], SiteResult], list[Site]], list[SiteResult]]
        | None = None, *, sites: Sequence[Site] | None = None, detector: Detector | None = None) -> RunSummary:
    """The whole run without Prefect (sites one after another unless ``map_sites`` parallelises).

    ``sites`` and ``detector`` let the Python API pass a GeoDataFrame's sites and its own detector.
    """
    store, sites, run_id = prepare(params, sites)
    fn = lambda s: run_site(params, s, run_id, detector)  # noqa: E731
    results = map_sites(fn, sites) if map_sites else [fn(s) for s in sites]
    return finish(store, run_id, results)


def summary_lines(summary: RunSummary | Mapping[str, Any]) -> list[str]:
    d = summary.as_dict() if isinstance(summary, RunSummary) else dict(summary)
    return [f"{d['sites']} sites, {d['scenes_found']} scenes found, {d['scenes_new']} new, "
            f"{d['scenes_unusable']} unusable (cloud or no data), {d['scenes_failed']} failed; "
            f"{d['detections_new']} new detections"
            + (f", {d['detections_withdrawn']} withdrawn" if d.get("detections_withdrawn") else ""),
            *[f"failed: {f}" for f in d["failures"]],
            *[f"withdrawn: {i} (pending, unreviewed; a later clear scene refutes it)" for i in d.get("withdrawn", [])],
            *[f"unusable: {u}" for u in d.get("unusable", [])], *[f"warning: {w}" for w in d.get("warnings", [])],
            *d.get("notes", [])]


__all__ = ["MonitorParams", "SiteResult", "RunSummary", "monitor_site", "redate_site", "run", "run_site",
           "prepare", "finish", "select_sites", "__version__"]


# ``sitewatch.monitor(...)``, the public API's run, is this module called (sitewatch._CallableModule).
from . import _api_module  # noqa: E402

_api_module(__name__)
