// sitewatch review page. Vanilla JS, no external resources.
// Every string from the GeoPackage goes into the page as textContent, never as HTML.
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="sitewatch-token"]').content;
  const CSRF = document.querySelector('meta[name="sitewatch-csrf"]').content;
  const KEY_REVIEWER = "sitewatch.reviewer";
  const $ = (id) => document.getElementById(id);
  const state = { items: [], index: 0, current: null, mode: "side", blinkTimer: null, busy: false, seq: 0 };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers["X-Sitewatch-Token"] = TOKEN;
    opts.credentials = "same-origin";
    const r = await fetch(path, opts);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
    return body;
  }

  function q(path) { return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN); }

  function say(text) { $("message").textContent = text; }

  // --- reviewer identity, asked once --------------------------------------------------
  function reviewer() { return (localStorage.getItem(KEY_REVIEWER) || "").trim(); }
  function showReviewer() { $("reviewer-name").textContent = reviewer() || "?"; }
  function askReviewer() {
    $("identity").hidden = false;
    $("identity-input").value = reviewer();
    $("identity-input").focus();
  }
  $("identity-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("identity-input").value.trim();
    if (!name) return;
    localStorage.setItem(KEY_REVIEWER, name);
    $("identity").hidden = true;
    $("identity-input").blur();
    showReviewer();
  });
  $("change-reviewer").addEventListener("click", askReviewer);

  // --- queue --------------------------------------------------------------------------
  async function loadQueue(keepId) {
    const status = $("filter").value;
    const data = await api("/api/queue?status=" + encodeURIComponent(status));
    state.items = data.detections;
    const c = data.counts;
    $("counts").textContent = c.pending + " pending · " + c.confirmed + " confirmed · " + c.rejected + " rejected";
    if (keepId) {
      const i = state.items.findIndex((d) => d.detection_id === keepId);
      if (i >= 0) state.index = i;
    }
    state.index = Math.max(0, Math.min(state.index, state.items.length - 1));
    renderQueue();
    if (state.items.length) await select(state.index);
    else { $("detail").hidden = true; state.current = null; }
  }

  function renderQueue() {
    const ol = $("queue");
    ol.replaceChildren();
    $("queue-empty").hidden = state.items.length > 0;
    state.items.forEach((d, i) => {
      const li = el("li");
      li.dataset.id = d.detection_id;
      if (i === state.index) li.classList.add("current");
      li.append(el("span", d.kind, "kind"),
        el("span", d.site_id + " · " + d.after_date + " · " + Number(d.score).toFixed(2) + " · ", "sub"),
        el("span", d.status, "sub status-" + d.status));
      li.addEventListener("click", () => select(i));
      ol.append(li);
    });
  }

  // --- one detection ------------------------------------------------------------------
  function row(table, key, value) {
    const tr = el("tr");
    tr.append(el("th", key), el("td", typeof value === "object" && value !== null ? JSON.stringify(value) : value));
    table.append(tr);
  }

  async function select(i) {
    if (i < 0 || i >= state.items.length) return;
    state.index = i;
    document.querySelectorAll("#queue li").forEach((li, j) => li.classList.toggle("current", j === i));
    const cur = document.querySelector("#queue li.current");
    if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: "nearest" });
    const id = state.items[i].detection_id;
    const seq = ++state.seq;
    const d = await api("/api/detection/" + encodeURIComponent(id));
    if (seq !== state.seq) return; // a later selection won: never show (or decide on) a stale one
    state.current = d;
    $("detail").hidden = false;
    $("title").textContent = d.kind.replace("_", " ") + " at " + (d.site_name || d.site_id) + " (" + d.detection_id + ")";
    $("facts").textContent = "absent " + d.before_date + ", present " + d.after_date +
      " · score " + Number(d.score).toFixed(2) + (d.area_m2 != null ? " · " + Math.round(d.area_m2) + " m²" : "") +
      (d.length_m != null ? " · " + Math.round(d.length_m) + " m long" : "") + " · status " + d.status;
    const base = "/api/chip/" + encodeURIComponent(id) + "/";
    $("img-before").src = q(base + "before.png");
    $("img-after").src = q(base + "after.png");
    $("img-context").src = q(base + "context.png");
    $("cap-before").textContent = "before " + d.before_date + " (" + d.before_scene_id + ")";
    $("cap-after").textContent = "after " + d.after_date + " (" + d.after_scene_id + ")";
    const ev = $("evidence"); ev.replaceChildren();
    Object.keys(d.evidence || {}).sort().forEach((k) => row(ev, k, d.evidence[k]));
    const me = $("metrics"); me.replaceChildren();
    Object.keys(d.metrics || {}).forEach((sid) => {
      const m = d.metrics[sid];
      row(me, sid, ["built_area_m2", "wall_length_m", "fence_length_m", "tower_count", "enclosed_area_m2", "security_level"]
        .filter((k) => m[k] !== null && m[k] !== undefined)
        .map((k) => k + " " + (typeof m[k] === "number" ? Math.round(m[k] * 10) / 10 : m[k])).join(", "));
    });
    const sc = $("scenes"); sc.replaceChildren();
    ["before", "after"].forEach((role) => {
      const s = d.scenes[role] || {};
      row(sc, role, s.missing ? s.scene_id + " (not in scenes)" :
        s.scene_id + " · " + s.acquired + " · " + s.source + " · gsd " + s.gsd_m + " m · sha256 " + String(s.sha256 || "").slice(0, 16));
    });
    const h = $("history"); h.replaceChildren();
    if (!d.reviews.length) h.append(el("li", "no reviews yet"));
    d.reviews.forEach((r) => {
      const li = el("li");
      li.append(el("span", r.at + " " + r.reviewer + ": "), el("strong", r.decision, "status-" + r.decision));
      if (r.note) li.append(el("span", r.note, "note"));
      h.append(li);
    });
    $("note").value = "";
    say("");
  }

  async function decide(decision) {
    if (!state.current || state.busy) return;
    const shown = state.items[state.index];
    if (!shown || shown.detection_id !== state.current.detection_id) { say("Still loading, try again"); return; }
    if (!reviewer()) { askReviewer(); return; }
    state.busy = true;
    const id = state.current.detection_id;
    try {
      await api("/api/review", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
        body: JSON.stringify({ detection_id: id, decision: decision, reviewer: reviewer(), note: $("note").value }),
      });
      const wasIndex = state.index;
      if ($("filter").value === "all") state.index = wasIndex + 1;
      await loadQueue($("filter").value === "all" ? null : undefined);
      say(id + " " + decision);
    } catch (e) {
      say("Not saved: " + e.message);
    } finally {
      state.busy = false;
    }
  }

  // --- compare modes ------------------------------------------------------------------
  function setMode(mode) {
    state.mode = mode;
    const c = $("compare");
    c.className = mode;
    document.querySelectorAll(".modes button").forEach((b) => b.classList.toggle("on", b.dataset.mode === mode));
    $("swipe").hidden = mode !== "swipe";
    clearInterval(state.blinkTimer);
    state.blinkTimer = null;
    document.querySelector("#compare figure.after").style.clipPath = "";
    if (mode === "swipe") applySwipe();
    if (mode === "blink") state.blinkTimer = setInterval(() => c.classList.toggle("show-before"), 600);
  }
  function applySwipe() {
    document.querySelector("#compare figure.after").style.clipPath = "inset(0 0 0 " + $("swipe").value + "%)";
  }
  $("swipe").addEventListener("input", applySwipe);
  document.querySelectorAll(".modes button").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));

  // --- keys ---------------------------------------------------------------------------
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT");
    if (typing) { if (ev.key === "Escape") t.blur(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !$("identity").hidden) return;
    const k = ev.key.toLowerCase();
    if (k === "c") decide("confirmed");
    else if (k === "r") decide("rejected");
    else if (k === "n" || k === "j") select(state.index + 1);
    else if (k === "p" || k === "k") select(state.index - 1);
    else if (k === "v") setMode({ side: "swipe", swipe: "blink", blink: "side" }[state.mode]);
    else if (k === "b") setMode(state.mode === "blink" ? "side" : "blink");
    else return;
    ev.preventDefault();
  });
  $("confirm").addEventListener("click", () => decide("confirmed"));
  $("reject").addEventListener("click", () => decide("rejected"));
  $("filter").addEventListener("change", () => { state.index = 0; $("filter").blur(); loadQueue().catch((e) => say(e.message)); });

  showReviewer();
  if (!reviewer()) askReviewer();
  loadQueue().catch((e) => say("Could not load the queue: " + e.message));
})();
