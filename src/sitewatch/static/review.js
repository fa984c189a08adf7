// sitewatch review page. Vanilla JS, no external resources.
// Every string from the GeoPackage goes into the page as textContent, never as HTML.
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="sitewatch-token"]').content;
  const CSRF = document.querySelector('meta[name="sitewatch-csrf"]').content;
  const KEY_REVIEWER = "sitewatch.reviewer";
  const $ = (id) => document.getElementById(id);
  const state = { items: [], index: 0, current: null, mode: "side", blinkTimer: null, busy: false, seq: 0,
    ready: false, waiting: [], queueSeq: 0 };

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
  async function loadQueue(keepId, message) {
    const status = $("filter").value;
    // a queue asked for earlier (the pending one reloading after a decision) may answer after one
    // asked for later (the filter just changed): only the latest request may draw the queue
    const mine = ++state.queueSeq;
    const data = await api("/api/queue?status=" + encodeURIComponent(status));
    if (mine !== state.queueSeq) return;
    state.items = data.detections;
    const c = data.counts;
    $("counts").textContent = c.pending + " pending · " + c.confirmed + " confirmed · " + c.rejected + " rejected · " +
      c.disputed + " disputed";
    if (keepId) {
      const i = state.items.findIndex((d) => d.detection_id === keepId);
      if (i >= 0) state.index = i;
    }
    state.index = Math.max(0, Math.min(state.index, state.items.length - 1));
    renderQueue();
    if (state.items.length) await select(state.index, message);
    else { ++state.seq; blank(); $("detail").hidden = true; state.current = null; }
  }

  function renderQueue() {
    const ol = $("queue");
    ol.replaceChildren();
    $("queue-empty").hidden = state.items.length > 0;
    state.items.forEach((d, i) => {
      const li = el("li");
      li.dataset.id = d.detection_id;
      if (i === state.index) li.classList.add("current");
      li.title = d.detection_id;
      // entries of one kind at one site on one date must still be told apart: number and size
      const size = d.length_m != null ? Math.round(d.length_m) + " m" : d.area_m2 != null ? Math.round(d.area_m2) + " m²" : "";
      li.append(el("span", (i + 1) + ". " + d.kind, "kind"),
        el("span", d.site_id + " · " + d.after_date + (size ? " · " + size : "") + " · " + Number(d.score).toFixed(2) +
          (d.rank_score != null ? " · rank " + Number(d.rank_score).toFixed(2) : "") + " · ", "sub"),
        el("span", d.status, "sub status-" + d.status));
      if (d.disputed) li.append(el("span", " disputed", "sub disputed"));
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

  // Chips arrive later than the facts (slow disks, big quicklooks). Until all three pictures of
  // the current detection have loaded, the pictures are blank, the title says "loading" and no
  // decision can be taken; a response for an earlier selection is dropped (state.seq).
  const IMGS = ["before", "after", "context"];
  function setReady(ready) {
    state.ready = ready;
    $("confirm").disabled = !ready;
    $("reject").disabled = !ready;
    $("detail").classList.toggle("loading", !ready);
  }

  function blank() {
    setReady(false);
    // settle the loads of the selection being left, so nothing awaiting them (a decision) hangs
    state.waiting.splice(0).forEach((resolve) => resolve(false));
    IMGS.forEach((n) => {
      const img = $("img-" + n);
      img.onload = img.onerror = null;
      img.removeAttribute("src");
      img.hidden = true;
      $("wait-" + n).hidden = false;
      $("wait-" + n).textContent = "loading…";
    });
  }

  function loadImg(name, url, seq) {
    const img = $("img-" + name);
    return new Promise((resolve) => {
      state.waiting.push(resolve);
      img.onload = () => {
        if (seq !== state.seq || img.getAttribute("src") !== url) return resolve(false);
        img.hidden = false;
        $("wait-" + name).hidden = true;
        resolve(true);
      };
      img.onerror = () => {
        if (seq === state.seq) $("wait-" + name).textContent = "no picture stored for this scene";
        resolve(false);
      };
      img.src = url;
    });
  }

  async function select(i, message) {
    if (i < 0 || i >= state.items.length) return;
    state.index = i;
    const seq = ++state.seq;
    blank();
    state.current = null;
    document.querySelectorAll("#queue li").forEach((li, j) => li.classList.toggle("current", j === i));
    const cur = document.querySelector("#queue li.current");
    if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: "nearest" });
    const id = state.items[i].detection_id;
    $("detail").hidden = false;
    $("title").textContent = "loading " + id + "…";
    ["facts", "cap-before", "cap-after", "dispute"].forEach((n) => { $(n).textContent = ""; });
    ["evidence", "metrics", "scenes", "history"].forEach((n) => $(n).replaceChildren());
    $("dispute").hidden = true;
    say(message || "");
    let d;
    try {
      d = await api("/api/detection/" + encodeURIComponent(id));
    } catch (e) {
      if (seq === state.seq) say("Could not load " + id + ": " + e.message);
      return;
    }
    if (seq !== state.seq || d.detection_id !== id) return; // a later selection won: never show a stale one
    state.current = d;
    $("title").textContent = d.kind.replace("_", " ") + " at " + (d.site_name || d.site_id) + " (" + d.detection_id + ")";
    $("facts").textContent = "absent " + d.before_date + ", present " + d.after_date +
      // a score fitted on real labelled detections is a share right (benchmarks/README.md §2); any other only ranks
      (d.evidence && d.evidence.score_model === "real" ? " · score (share right on real labelled pairs) "
        : " · uncalibrated ranking score ") + Number(d.score).toFixed(2) + (d.area_m2 != null ? " · " + Math.round(d.area_m2) + " m²" : "") +
      (d.length_m != null ? " · " + Math.round(d.length_m) + " m long" : "") + " · status " + d.status;
    if (d.dispute) {
      $("dispute").hidden = false;
      $("dispute").textContent = "Disputed: reviewers disagree (" + Object.keys(d.dispute).sort()
        .map((k) => k + " " + d.dispute[k]).join("; ") + "). The latest decision sets the status.";
    }
    $("cap-before").textContent = "before " + d.before_date + " (" + d.before_scene_id + ")";
    $("cap-after").textContent = "after " + d.after_date + " (" + d.after_scene_id + ")";
    const ev = $("evidence");
    Object.keys(d.evidence || {}).sort().forEach((k) => row(ev, k, d.evidence[k]));
    const me = $("metrics");
    Object.keys(d.metrics || {}).forEach((sid) => {
      const m = d.metrics[sid];
      row(me, sid, ["built_area_m2", "wall_length_m", "fence_length_m", "tower_count", "enclosed_area_m2", "security_level"]
        .filter((k) => m[k] !== null && m[k] !== undefined)
        .map((k) => k + " " + (typeof m[k] === "number" ? Math.round(m[k] * 10) / 10 : m[k])).join(", "));
    });
    const sc = $("scenes");
    ["before", "after"].forEach((role) => {
      const s = d.scenes[role] || {};
      row(sc, role, s.missing ? s.scene_id + " (not in scenes)" :
        s.scene_id + " · " + s.acquired + " · " + s.source + " · gsd " + s.gsd_m + " m · sha256 " + String(s.sha256 || "").slice(0, 16));
    });
    const h = $("history");
    if (!d.reviews.length) h.append(el("li", "no reviews yet"));
    d.reviews.forEach((r) => {
      const li = el("li");
      li.append(el("span", r.at + " " + r.reviewer + ": "), el("strong", r.decision, "status-" + r.decision));
      if (r.note) li.append(el("span", r.note, "note"));
      h.append(li);
    });
    $("note").value = "";
    const base = "/api/chip/" + encodeURIComponent(id) + "/";
    const loaded = await Promise.all(IMGS.map((n) => loadImg(n, q(base + n + ".png"), seq)));
    if (seq !== state.seq) return;
    if (loaded[0] && loaded[1]) setReady(true);
    else say("The before or after picture is missing: decide with `sitewatch review show " + id + "`.");
  }

  async function decide(decision) {
    if (!state.current || state.busy) return;
    const shown = state.items[state.index];
    if (!state.ready || !shown || shown.detection_id !== state.current.detection_id) {
      say("Still loading: wait for the pictures");
      return;
    }
    if (!reviewer()) { askReviewer(); return; }
    state.busy = true;
    const id = state.current.detection_id;
    try {
      const res = await api("/api/review", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
        body: JSON.stringify({ detection_id: id, decision: decision, reviewer: reviewer(), note: $("note").value }),
      });
      const wasIndex = state.index;
      if ($("filter").value === "all") state.index = wasIndex + 1;
      const said = res.dispute ? res.dispute : id + " " + decision;
      say(said);
      try {
        await loadQueue($("filter").value === "all" ? null : undefined, said);
      } catch (e) {
        say(said + " (saved; the queue did not reload: " + e.message + ")");
      }
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
