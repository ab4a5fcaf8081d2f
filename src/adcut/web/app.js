// adcut label: the page. Draws the waveform on two canvases, plays the episode, edits segments,
// saves them through the local server. No libraries and nothing fetched from elsewhere.
"use strict";

(function () {
  const PREROLL = 3;          // seconds played before a boundary that n / p jump to
  const MIN_SEGMENT = 0.1;    // shortest segment an edit may leave, seconds
  const EDGE_GRAB_PX = 7;     // how close to an edge the pointer must be to drag it
  const ZOOM_STEPS = [5, 10, 20, 30, 60, 120, 300, 600, 1200];
  const PALETTE = ["#f5a524", "#4c8dff", "#3ccf91", "#c77dff", "#ff6b8b", "#2ec4d6"];

  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const audio = $("audio");

  const state = {
    name: "", duration: 0, classes: [], background: "content", markClass: "ad",
    segments: [],            // marked (non-background) spans: {id, start, end, label, confidence}
    backgroundConf: new Map(), // "start|end" of a model's background span -> its confidence
    peaks: null,             // {levels: [{spb, count, data: Int8Array}], complete, duration, norm}
    zoomSeconds: 30,
    pendingStart: null,      // time of an unfinished '[', or null
    focusBoundary: null,     // the boundary n / p last jumped to
    dirty: false,
    saving: false,
    drag: null,              // {seg, edge, canvas, viewStart}
    audioOk: true,
    virtualTime: 0,          // the playhead when the browser cannot play the file
    savedCount: 0,
  };
  let nextId = 1;
  let readyResolve;
  const ready = new Promise((resolve) => { readyResolve = resolve; });

  // ------------------------------------------------------------------ helpers

  function fmt(seconds) {
    const tenths = Math.max(0, Math.round(seconds * 10));
    const h = Math.floor(tenths / 36000);
    const m = Math.floor((tenths % 36000) / 600);
    const s = Math.floor((tenths % 600) / 10);
    return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}.${tenths % 10}`;
  }
  function fmtDuration(seconds) {
    return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }
  const ms = (t) => Math.round(t * 1000) / 1000;
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  function colour(label) {
    const i = state.classes.indexOf(label);
    return PALETTE[(i < 0 ? state.classes.length : i) % PALETTE.length];
  }
  function withAlpha(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ "X-Adcut-Token": token }, options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = (body && body.error) || `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  function showMessage(text, kind = "info") {
    const box = $("message");
    box.textContent = text;
    box.className = `message ${kind}`;
    box.hidden = !text;
    clearTimeout(showMessage.timer);
    if (text && kind !== "error") showMessage.timer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  // ------------------------------------------------------------------ time and playback

  function now() { return state.audioOk ? audio.currentTime : state.virtualTime; }
  function playing() { return state.audioOk && !audio.paused; }

  function seek(t) {
    t = clamp(t, 0, state.duration || 0);
    state.virtualTime = t;
    if (state.audioOk) {
      try { audio.currentTime = t; } catch (e) { /* metadata not loaded yet */ }
    }
    render();
  }

  function togglePlay() {
    if (!state.audioOk) { showMessage("This browser cannot play this file; the waveform and labels still work.", "error"); return; }
    if (audio.paused) audio.play().catch((e) => showMessage(`cannot play: ${e.message}`, "error"));
    else audio.pause();
  }

  function playFrom(t) {
    seek(t);
    if (state.audioOk && audio.paused) audio.play().catch(() => {});
  }

  // ------------------------------------------------------------------ segments

  function sortSegments() { state.segments.sort((a, b) => a.start - b.start); }
  function segmentAt(t) { return state.segments.find((s) => s.start <= t && t < s.end) || null; }
  function edited(seg) { seg.confidence = null; markDirty(); }

  function markDirty() {
    state.dirty = true;
    updateStatus();
  }

  // Adds [start, end) of `label`: overlapping spans of the same class merge into it, others are cut back.
  function addSegment(start, end, label) {
    const kept = [];
    for (const s of state.segments) {
      if (s.end <= start || s.start >= end) { kept.push(s); continue; }
      if (s.label === label) { start = Math.min(start, s.start); end = Math.max(end, s.end); continue; }
      if (s.start < start) kept.push(Object.assign({}, s, { id: nextId++, end: start, confidence: null }));
      if (s.end > end) kept.push(Object.assign({}, s, { id: nextId++, start: end, confidence: null }));
    }
    const seg = { id: nextId++, start: ms(start), end: ms(end), label, confidence: null };
    kept.push(seg);
    state.segments = kept.filter((s) => s.end - s.start >= 0.001);
    sortSegments();
    markDirty();
    return seg;
  }

  function markStart() {
    const t = ms(now());
    const seg = segmentAt(t);
    if (seg && t > seg.start) {
      const i = state.segments.indexOf(seg);
      const floor = i > 0 ? state.segments[i - 1].end : 0;
      seg.start = ms(clamp(t, floor, seg.end - MIN_SEGMENT));
      edited(seg);
      showMessage(`${seg.label} now starts at ${fmt(seg.start)}`);
    } else {
      state.pendingStart = t;
      showMessage(`${state.markClass} starts at ${fmt(t)}; press ] where it ends`);
    }
    render();
  }

  function markEnd() {
    const t = ms(now());
    if (state.pendingStart !== null) {
      const a = Math.min(state.pendingStart, t), b = Math.max(state.pendingStart, t);
      if (b - a < MIN_SEGMENT) { showMessage("the ad would be empty: move the playhead past its start first", "error"); return; }
      state.pendingStart = null;
      const seg = addSegment(a, b, state.markClass);
      showMessage(`${seg.label} ${fmt(seg.start)} – ${fmt(seg.end)}`);
    } else {
      const seg = segmentAt(t) || state.segments.find((s) => Math.abs(s.end - t) < 1e-6);
      if (!seg) { showMessage("press [ where the ad starts first", "error"); return; }
      const i = state.segments.indexOf(seg);
      const ceiling = i + 1 < state.segments.length ? state.segments[i + 1].start : state.duration;
      seg.end = ms(clamp(t, seg.start + MIN_SEGMENT, ceiling));
      edited(seg);
      showMessage(`${seg.label} now ends at ${fmt(seg.end)}`);
    }
    render();
  }

  function removeAtPlayhead() {
    const seg = segmentAt(now());
    if (!seg) { showMessage("no segment under the playhead", "error"); return; }
    state.segments = state.segments.filter((s) => s !== seg);
    markDirty();
    showMessage(`removed ${seg.label} ${fmt(seg.start)} – ${fmt(seg.end)}`);
    render();
  }

  function boundaries() {
    const times = [];
    for (const s of state.segments) { times.push(s.start, s.end); }
    return [...new Set(times.map(ms))].filter((t) => t > 0.001 && t < state.duration - 0.001).sort((a, b) => a - b);
  }

  // n / p: after a jump the playhead sits PREROLL before the boundary, so the reference point is
  // the boundary itself while the playhead is still near it.
  function jumpBoundary(direction) {
    const list = boundaries();
    if (!list.length) { showMessage("no boundaries yet", "error"); return; }
    const t = now();
    const f = state.focusBoundary;
    const ref = f !== null && t >= f - PREROLL - 1 && t <= f + 15 ? f : t;
    const target = direction > 0 ? list.find((b) => b > ref + 0.01) : [...list].reverse().find((b) => b < ref - 0.01);
    if (target === undefined) { showMessage(direction > 0 ? "no boundary after this one" : "no boundary before this one"); return; }
    state.focusBoundary = target;
    playFrom(Math.max(0, target - PREROLL));
    showMessage(`boundary at ${fmt(target)}`);
  }

  // ------------------------------------------------------------------ saving

  function payload() {
    return { segments: state.segments.map((s) => ({ label: s.label, start: ms(s.start), end: ms(s.end) })) };
  }

  async function save() {
    if (state.saving) return;
    state.saving = true;
    updateStatus("saving…");
    try {
      const result = await api("/api/labels", {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload()),
      });
      state.dirty = false;
      state.savedCount += 1;
      const when = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      updateStatus(`saved ${when}`);
      showMessage(`saved ${result.count} segment(s) to ${result.saved}`);
    } catch (error) {
      updateStatus();
      showMessage(`not saved: ${error.message}`, "error");
    } finally {
      state.saving = false;
    }
  }

  function updateStatus(text) {
    const el = $("status");
    if (text) { el.textContent = text; el.className = `status ${state.dirty ? "dirty" : "saved"}`; return; }
    el.textContent = state.dirty ? "unsaved changes" : (state.savedCount ? "saved" : "no changes");
    el.className = `status ${state.dirty ? "dirty" : ""}`;
  }

  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  // ------------------------------------------------------------------ drawing

  const views = { overview: $("overview"), zoom: $("zoom") };

  // The time span each canvas shows.
  function viewRange(name) {
    const d = state.duration || 1;
    if (name === "overview") return [0, d];
    const width = Math.min(state.zoomSeconds, d);
    if (state.drag && state.drag.canvas === "zoom") return [state.drag.viewStart, state.drag.viewStart + width];
    const start = clamp(now() - width / 2, 0, Math.max(0, d - width));
    return [start, start + width];
  }

  function cssWidth(canvas) { return canvas.clientWidth || 1; }
  function timeToX(name, t) {
    const [a, b] = viewRange(name);
    return ((t - a) / (b - a)) * cssWidth(views[name]);
  }
  function xToTime(name, x) {
    const [a, b] = viewRange(name);
    return a + (x / cssWidth(views[name])) * (b - a);
  }

  function fitCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * ratio), h = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return ctx;
  }

  function drawWave(ctx, name, w, top, h) {
    const peaks = state.peaks;
    if (!peaks || !peaks.levels.length || !peaks.levels[0].count) return;
    const [a, b] = viewRange(name);
    const spp = (b - a) / w;
    let level = peaks.levels[0];
    for (const candidate of peaks.levels) { if (candidate.spb <= spp) level = candidate; }
    const mid = top + h / 2, half = (h / 2) * 0.92 / peaks.norm;
    ctx.fillStyle = "#c9d1de";
    for (let px = 0; px < w; px++) {
      const t0 = a + px * spp;
      let i0 = Math.floor(t0 / level.spb), i1 = Math.floor((t0 + spp) / level.spb);
      if (i1 <= i0) i1 = i0 + 1;
      if (i0 >= level.count || i1 <= 0) continue;
      i0 = Math.max(0, i0); i1 = Math.min(level.count, i1);
      let lo = 127, hi = -128;
      for (let i = i0; i < i1; i++) {
        const l = level.data[2 * i], u = level.data[2 * i + 1];
        if (l < lo) lo = l;
        if (u > hi) hi = u;
      }
      const y0 = mid - (hi / 127) * half, y1 = mid - (lo / 127) * half;
      ctx.fillRect(px, y0, 1, Math.max(1, y1 - y0));
    }
  }

  function niceStep(spp) {
    const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    return steps.find((s) => s / spp >= 90) || 7200;
  }

  function drawRuler(ctx, name, w, h) {
    const [a, b] = viewRange(name);
    const step = niceStep((b - a) / w);
    ctx.fillStyle = "#8b93a5";
    ctx.strokeStyle = "rgba(255,255,255,0.08)";
    ctx.font = "11px ui-monospace, Menlo, Consolas, monospace";
    ctx.textBaseline = "bottom";
    for (let t = Math.ceil(a / step) * step; t <= b; t += step) {
      const x = Math.round(timeToX(name, t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h - 14); ctx.stroke();
      let label = fmt(t);
      if (step >= 1) label = label.slice(0, -2);
      if (x + 4 < w - 40) ctx.fillText(label, x + 3, h - 1);
    }
  }

  function drawSegments(ctx, name, w, top, h) {
    const [a, b] = viewRange(name);
    // Unlabelled time belongs to the background class: a faint wash in its colour.
    ctx.fillStyle = withAlpha(colour(state.background), 0.07);
    ctx.fillRect(Math.max(0, timeToX(name, 0)), top, Math.min(w, timeToX(name, state.duration)) - Math.max(0, timeToX(name, 0)), h);
    for (const s of state.segments) {
      if (s.end < a || s.start > b) continue;
      const x0 = timeToX(name, s.start), x1 = timeToX(name, s.end);
      const c = colour(s.label);
      ctx.fillStyle = withAlpha(c, 0.26);
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), h);
      ctx.fillStyle = c;
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), 5);
      if (name === "zoom") {
        for (const x of [x0, x1]) {
          ctx.fillRect(Math.round(x) - 1, top, 2, h);
          ctx.fillRect(Math.round(x) - 4, top + h / 2 - 12, 8, 24);
        }
        ctx.fillStyle = "#0e1116";
        for (const x of [x0, x1]) {
          for (const dy of [-5, 0, 5]) ctx.fillRect(Math.round(x) - 2, top + h / 2 + dy - 0.5, 4, 1);
        }
        ctx.fillStyle = c;
        ctx.font = "600 12px system-ui, sans-serif";
        ctx.textBaseline = "top";
        const lx = Math.max(x0 + 8, 6);
        if (x1 - lx > 60) ctx.fillText(`${s.label}  ${fmt(s.start)} – ${fmt(s.end)}`, lx, top + 9);
      } else {
        ctx.fillRect(x0, top, 1, h);
        ctx.fillRect(x1 - 1, top, 1, h);
      }
    }
    if (state.pendingStart !== null) {
      const x0 = timeToX(name, state.pendingStart), x1 = timeToX(name, now());
      ctx.fillStyle = withAlpha(colour(state.markClass), 0.14);
      ctx.fillRect(Math.min(x0, x1), top, Math.abs(x1 - x0), h);
      ctx.strokeStyle = colour(state.markClass);
      ctx.setLineDash([4, 4]);
      ctx.beginPath(); ctx.moveTo(Math.round(x0) + 0.5, top); ctx.lineTo(Math.round(x0) + 0.5, top + h); ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  function drawView(name) {
    const canvas = views[name];
    const ctx = fitCanvas(canvas);
    const w = canvas.clientWidth, h = canvas.clientHeight;
    const rulerH = name === "zoom" ? 16 : 0;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#11141a";
    ctx.fillRect(0, 0, w, h);
    if (name === "zoom") drawRuler(ctx, name, w, h);
    drawSegments(ctx, name, w, 0, h - rulerH);
    drawWave(ctx, name, w, 0, h - rulerH);
    if (name === "overview" && state.duration) {
      // The zoomed view's span, outlined.
      const [a, b] = viewRange("zoom");
      const x0 = timeToX("overview", a), x1 = timeToX("overview", b);
      ctx.strokeStyle = "rgba(255,255,255,0.55)";
      ctx.lineWidth = 1;
      ctx.strokeRect(Math.round(x0) + 0.5, 0.5, Math.max(2, x1 - x0), h - 1);
      ctx.fillStyle = "rgba(255,255,255,0.05)";
      ctx.fillRect(x0, 0, Math.max(2, x1 - x0), h);
    }
    if (state.peaks && !state.peaks.complete) {
      const done = timeToX(name, state.peaks.duration);
      if (done < w) {
        ctx.fillStyle = "rgba(18,21,27,0.6)";
        ctx.fillRect(Math.max(0, done), 0, w - Math.max(0, done), h - rulerH);
        ctx.fillStyle = "#8b93a5";
        ctx.font = "12px system-ui, sans-serif";
        ctx.textBaseline = "middle";
        ctx.fillText("reading the waveform…", Math.max(8, done + 8), (h - rulerH) / 2);
      }
    }
    const x = Math.round(timeToX(name, now()));
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(x - 1, 0, 2, h - rulerH);
    if (name === "zoom") {
      ctx.beginPath(); ctx.moveTo(x - 6, 0); ctx.lineTo(x + 6, 0); ctx.lineTo(x, 8); ctx.closePath(); ctx.fill();
    }
  }

  function renderList() {
    const list = $("segments");
    const items = state.segments.map((s) => ({ seg: s, start: s.start, end: s.end, label: s.label, confidence: s.confidence }));
    // Background spans the model was unsure about are worth a look too (a missed ad hides there).
    let cursor = 0;
    const gaps = [];
    for (const s of state.segments) { if (s.start > cursor) gaps.push([cursor, s.start]); cursor = Math.max(cursor, s.end); }
    if (state.duration > cursor) gaps.push([cursor, state.duration]);
    for (const [a, b] of gaps) {
      const key = `${ms(a)}|${ms(b)}`;
      if (state.backgroundConf.has(key)) items.push({ seg: null, start: a, end: b, label: state.background, confidence: state.backgroundConf.get(key) });
    }
    const withConf = items.filter((i) => i.confidence !== null).sort((x, y) => x.confidence - y.confidence || x.start - y.start);
    const rest = items.filter((i) => i.confidence === null).sort((x, y) => x.start - y.start);
    const ordered = withConf.concat(rest);
    $("count").textContent = `${state.segments.length} ${state.markClass}${state.segments.length === 1 ? "" : "s"}`;
    $("list-hint").textContent = withConf.length
      ? "least confident first: check these, then save"
      : "mark ads with [ and ] while listening; click one to hear it";
    const t = now();
    const signature = JSON.stringify(ordered.map((i) => [i.start, i.end, i.label, i.confidence])) + `|${state.duration}`;
    if (list.dataset.signature === signature) {
      for (const li of list.children) {
        if (li.dataset.start === undefined) continue;
        li.classList.toggle("current", +li.dataset.start <= t && t < +li.dataset.end);
      }
      return;
    }
    list.dataset.signature = signature;
    list.textContent = "";
    if (!ordered.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No segments yet. Press [ where an ad starts and ] where it ends.";
      list.appendChild(li);
      return;
    }
    for (const item of ordered) {
      const li = document.createElement("li");
      li.className = "segment";
      li.dataset.start = item.start;
      li.dataset.end = item.end;
      li.dataset.label = item.label;
      li.dataset.confidence = item.confidence === null ? "" : item.confidence;
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.background = colour(item.label);
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = `${item.label} · ${fmtDuration(item.end - item.start)}`;
      const conf = document.createElement("span");
      if (item.confidence === null) {
        conf.className = "conf none";
        conf.textContent = item.seg ? "" : "";
      } else {
        const pct = Math.round(item.confidence * 100);
        conf.className = `conf ${pct < 70 ? "low" : pct < 90 ? "mid" : "high"}`;
        conf.textContent = `${pct}%`;
        conf.title = "the model's confidence in this segment";
      }
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = `${fmt(item.start)} – ${fmt(item.end)}`;
      li.append(chip, what, conf, when);
      li.addEventListener("click", () => playFrom(Math.max(0, item.start - PREROLL)));
      li.classList.toggle("current", item.start <= t && t < item.end);
      list.appendChild(li);
    }
  }

  function renderLegend() {
    const legend = $("legend");
    legend.textContent = "";
    for (const name of state.classes) {
      const item = document.createElement("span");
      item.className = "item";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = name === state.background ? withAlpha(colour(name), 0.35) : colour(name);
      const text = document.createElement("span");
      text.textContent = name === state.background ? `${name} (unmarked time)` : name;
      item.append(swatch, text);
      legend.appendChild(item);
    }
  }

  let frameRequested = false;
  function render() {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      drawView("overview");
      drawView("zoom");
      $("time").textContent = fmt(now());
      $("duration").textContent = fmt(state.duration);
      $("play").innerHTML = playing() ? "&#10074;&#10074;" : "&#9654;";
      $("zoom-label").textContent = state.zoomSeconds >= 60 ? `${state.zoomSeconds / 60} min` : `${state.zoomSeconds} s`;
      renderList();
      if (playing()) render();
    });
  }

  // ------------------------------------------------------------------ pointer: seek and drag edges

  function edgeNear(name, x) {
    let best = null;
    for (const s of state.segments) {
      for (const edge of ["start", "end"]) {
        const d = Math.abs(timeToX(name, s[edge]) - x);
        if (d <= EDGE_GRAB_PX && (!best || d < best.d)) best = { seg: s, edge, d };
      }
    }
    return best;
  }

  function localX(canvas, event) { return event.clientX - canvas.getBoundingClientRect().left; }

  for (const name of Object.keys(views)) {
    const canvas = views[name];
    canvas.addEventListener("pointerdown", (event) => {
      const x = localX(canvas, event);
      const hit = edgeNear(name, x);
      canvas.setPointerCapture(event.pointerId);
      if (hit) {
        state.drag = { seg: hit.seg, edge: hit.edge, canvas: name, viewStart: viewRange("zoom")[0], moved: false };
      } else {
        seek(xToTime(name, x));
      }
    });
    canvas.addEventListener("pointermove", (event) => {
      const x = localX(canvas, event);
      if (!state.drag) {
        canvas.style.cursor = edgeNear(name, x) ? "ew-resize" : "pointer";
        return;
      }
      const { seg, edge } = state.drag;
      const i = state.segments.indexOf(seg);
      const t = xToTime(name, x);
      if (edge === "start") {
        const floor = i > 0 ? state.segments[i - 1].end : 0;
        seg.start = ms(clamp(t, floor, seg.end - MIN_SEGMENT));
      } else {
        const ceiling = i + 1 < state.segments.length ? state.segments[i + 1].start : state.duration;
        seg.end = ms(clamp(t, seg.start + MIN_SEGMENT, ceiling));
      }
      state.drag.moved = true;
      edited(seg);
      render();
    });
    const endDrag = () => {
      if (state.drag && state.drag.moved) {
        const s = state.drag.seg;
        showMessage(`${s.label} ${fmt(s.start)} – ${fmt(s.end)}`);
      }
      state.drag = null;
      render();
    };
    canvas.addEventListener("pointerup", endDrag);
    canvas.addEventListener("pointercancel", endDrag);
    if (name === "zoom") {
      canvas.addEventListener("wheel", (event) => { event.preventDefault(); zoom(event.deltaY > 0 ? 1 : -1); }, { passive: false });
    }
  }

  function zoom(direction) {
    const i = ZOOM_STEPS.indexOf(state.zoomSeconds);
    state.zoomSeconds = ZOOM_STEPS[clamp((i < 0 ? 3 : i) + direction, 0, ZOOM_STEPS.length - 1)];
    render();
  }

  // ------------------------------------------------------------------ keys

  function toggleHelp(show) {
    const help = $("help");
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "s") { event.preventDefault(); save(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const step = event.shiftKey ? 1 : 5;
    switch (key) {
      case " ": event.preventDefault(); togglePlay(); break;
      case "ArrowLeft": event.preventDefault(); seek(now() - step); break;
      case "ArrowRight": event.preventDefault(); seek(now() + step); break;
      case "[": markStart(); break;
      case "]": markEnd(); break;
      case "n": case "N": jumpBoundary(+1); break;
      case "p": case "P": jumpBoundary(-1); break;
      case "Delete": case "Backspace": event.preventDefault(); removeAtPlayhead(); break;
      case "?": toggleHelp(); break;
      case "+": case "=": zoom(-1); break;
      case "-": case "_": zoom(+1); break;
      case "Escape":
        if (!$("help").hidden) toggleHelp(false);
        else if (state.pendingStart !== null) { state.pendingStart = null; showMessage("unfinished ad cancelled"); render(); }
        break;
      default: return;
    }
  });

  // Buttons must not keep focus, or space would press them instead of playing.
  for (const [id, action] of [["play", togglePlay], ["save", save], ["help-button", () => toggleHelp()],
    ["help-close", () => toggleHelp(false)], ["zoom-in", () => zoom(-1)], ["zoom-out", () => zoom(+1)]]) {
    $(id).addEventListener("click", (event) => { event.currentTarget.blur(); action(); });
  }
  $("help").addEventListener("click", (event) => { if (event.target === $("help")) toggleHelp(false); });

  // ------------------------------------------------------------------ loading

  function decodeLevel(level) {
    const bytes = atob(level.data);
    const data = new Int8Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) data[i] = (bytes.charCodeAt(i) << 24) >> 24;
    return { spb: level.seconds_per_bin, count: level.count, data };
  }

  async function loadPeaks() {
    try {
      const raw = await api("/api/peaks");
      const levels = raw.levels.map(decodeLevel);
      let norm = 1;
      const coarsest = levels[levels.length - 1];
      if (coarsest && coarsest.count) {
        let peak = 1;
        for (let i = 0; i < coarsest.data.length; i++) peak = Math.max(peak, Math.abs(coarsest.data[i]));
        norm = Math.max(peak / 127, 0.02); // quiet recordings are scaled up to fill the view
      }
      state.peaks = { levels, complete: raw.complete, duration: raw.duration, norm };
      if (raw.error) { showMessage(raw.error, "error"); return; }
      if (raw.complete) {
        if (raw.duration > 0) state.duration = raw.duration;
      } else {
        if (!state.duration) state.duration = raw.duration;
        // Long episodes: poll less often, so that sending the growing waveform does not slow its decoding.
        setTimeout(loadPeaks, raw.duration > 1800 ? 2000 : 600);
      }
      render();
    } catch (error) {
      showMessage(`waveform: ${error.message}`, "error");
    }
  }

  async function load() {
    let info;
    try {
      info = await api("/api/episode");
    } catch (error) {
      showMessage(error.message, "error");
      $("status").textContent = "not connected";
      return;
    }
    state.name = info.name;
    state.duration = info.duration || 0;
    state.classes = info.classes;
    state.background = info.background;
    state.markClass = info.mark_class;
    for (const s of info.segments) {
      if (s.label === state.background) {
        if (s.confidence !== null) state.backgroundConf.set(`${ms(s.start)}|${ms(s.end)}`, s.confidence);
        continue;
      }
      state.segments.push({ id: nextId++, start: s.start, end: s.end, label: s.label, confidence: s.confidence });
    }
    sortSegments();
    document.title = `${info.name} · adcut label`;
    $("name").textContent = info.name;
    $("name").title = info.name;
    $("source").textContent = (info.source ? `from ${info.source} · ` : "") + `saves to ${info.labels_shown}`;
    $("source").title = info.labels_path;
    renderLegend();
    updateStatus();
    audio.src = `/api/audio?token=${encodeURIComponent(token)}`;
    await loadPeaks();
    render();
    readyResolve();
  }

  audio.addEventListener("error", () => {
    state.audioOk = false;
    showMessage("This browser cannot play this file's format; the waveform and labels still work.", "error");
    render();
  });
  audio.addEventListener("loadedmetadata", () => {
    if (!state.duration && isFinite(audio.duration)) state.duration = audio.duration;
    if (state.virtualTime) audio.currentTime = state.virtualTime;
    render();
  });
  for (const name of ["play", "pause", "seeked", "timeupdate", "ended"]) audio.addEventListener(name, render);
  window.addEventListener("resize", render);

  // For tests and the curious: the page's state and its time <-> pixel mapping.
  window.adcut = { state, ready, timeToX, xToTime, seek, now, save, fmt };
  load();
})();
