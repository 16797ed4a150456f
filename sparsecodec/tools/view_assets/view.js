/* spev view: the page's one script (no library, no network).  Data comes from the JSON blocks written by
   sparsecodec/tools/view.py; every string from the file is written with textContent, never as HTML. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var hook = { ready: false, n: 0, drawn: 0, lastPlayed: null, played: 0, fullPlays: 0, errors: [] };
  window.spevView = hook;

  function fail(message) {
    var el = $("error");
    el.textContent = message;
    el.hidden = false;
    hook.errors.push(String(message));
  }

  window.addEventListener("error", function (e) { fail("page error: " + (e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) {
    fail("page error: " + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });

  var D;
  try {
    D = JSON.parse($("spev-data").textContent);
  } catch (e) {
    fail("This page's data is damaged (" + e.message + "); build it again with spev view.");
    hook.ready = true;
    return;
  }

  // ------------------------------------------------------------------------------------------- data

  function b64bytes(text) {
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function bytesB64(bytes) {
    var parts = [];
    for (var i = 0; i < bytes.length; i += 0x8000) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return btoa(parts.join(""));
  }

  var N = D.n, DIMS = D.dims, ND = DIMS.length, times = D.times;
  var DIM = {};
  DIMS.forEach(function (d, j) { DIM[d.name] = j; });
  var index = new DataView(b64bytes(D.index).buffer);
  function param(i, j) { return D.values[j][index.getUint16(2 * (i * ND + j), true)]; }
  hook.n = N;
  hook.selected = -1;
  hook.tipEvent = null;
  hook.pitchedFlags = function () { return D.pitched; };
  hook.param = param;

  var level = new Float64Array(N), pitch = new Float64Array(N), noisePitch = new Float64Array(N);
  for (var i = 0; i < N; i++) {
    level[i] = param(i, DIM.level);
    pitch[i] = param(i, DIM.pitch);
    noisePitch[i] = 69 + 12 * Math.log2(param(i, DIM.noise_centre) / 440);
  }

  // -------------------------------------------------------------------------------------- formatting

  function fmt(x) {
    if (x === 0) return "0";
    var s = Number(x.toPrecision(5)).toString();
    return s.indexOf("e") >= 0 ? x.toPrecision(5) : s;
  }
  function fmtTime(t, step) {
    var decimals = step >= 1 ? 0 : step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3;
    if (D.info.duration_s < 60) return t.toFixed(decimals) + " s";
    var m = Math.floor(t / 60), s = t - 60 * m;
    var ss = s.toFixed(decimals);
    if (s < 10) ss = "0" + ss;
    return m + ":" + ss;
  }
  var NOTE = ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"];
  function noteName(p) { var k = Math.round(p); return NOTE[((k % 12) + 12) % 12] + (Math.floor(k / 12) - 1); }

  // ------------------------------------------------------------------------------------- side panel

  function row(dl, name, value) {
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value;
    dl.appendChild(dt);
    dl.appendChild(dd);
  }
  var I = D.info;
  $("title").textContent = I.file + " — " + N + " events";
  var info = $("info");
  row(info, "file", I.file);
  row(info, "duration", I.duration_s.toFixed(2) + " s");
  row(info, "rate", I.sample_rate + " Hz, " + (I.channels === 1 ? "mono" : I.channels === 2 ? "stereo" : I.channels + " ch"));
  row(info, "bit rate", I.kbps.toFixed(2) + " kbps (" + I.bytes + " bytes)");
  row(info, "events", N + " (" + I.events_per_s.toFixed(1) + "/s, " + I.chunks + " chunks)");
  row(info, "encoder", I.encoder_id);
  row(info, "weights", I.weights_hash || "—");
  row(info, "layout", String(I.layout_version));
  row(info, "written by", I.software);
  row(info, "y axis", D.projection === "t-SNE" ? "t-SNE (as spev plot)" : "PCA (as spev plot)");
  row(info, "clips", N ? "Opus ≤ " + D.clips.max_s + " s: " + D.clips.rate / 1000 + " kHz at " + D.clips.kbps.toFixed(1) +
    " kbps" + (D.clips.bright ? "; " + D.clips.bright + " bright events " + D.clips.bright_rate / 1000 + " kHz at " +
    D.clips.bright_kbps + " kbps" : "") : "—");
  row(info, "page", D.software);
  var tagNames = Object.keys(I.tags).sort();
  if (!tagNames.length) row($("tags"), "—", "no tags");
  tagNames.forEach(function (k) { row($("tags"), k, I.tags[k]); });

  function CLIPS_META() {
    if (!CLIPS_META.cache) CLIPS_META.cache = JSON.parse($("spev-clips").textContent);
    return CLIPS_META.cache;
  }

  // ---------------------------------------------------------------------------------------- geometry

  var M = { left: 64, right: 14, top: 8, bottom: 26 };
  var view = { t0: 0, t1: Math.max(I.duration_s, times.length ? times[times.length - 1] : 0, 1e-3) };
  var FULL = view.t1;
  var modes = { y: "projection", colour: "projection" };
  var selected = -1, hover = -1, playhead = null;
  var canvas = $("timeline"), ctx2d = canvas.getContext("2d");
  var specCanvases = [];

  function plotWidth(c) { return c.clientWidth - M.left - M.right; }
  function xOf(t, c) { return M.left + (t - view.t0) / (view.t1 - view.t0) * plotWidth(c || canvas); }
  function tOf(x, c) { return view.t0 + (x - M.left) / plotWidth(c || canvas) * (view.t1 - view.t0); }

  function yValue(i) {
    if (modes.y === "projection") return D.y_projection[i];
    if (modes.y === "level") return level[i];
    return D.pitched[i] ? pitch[i] : noisePitch[i];
  }
  var yRanges = {};
  function yRange() {
    if (yRanges[modes.y]) return yRanges[modes.y];
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < N; i++) { var v = yValue(i); if (v < lo) lo = v; if (v > hi) hi = v; }
    var r;
    if (modes.y === "projection") r = [-0.04, 1.04];
    else if (!N) r = modes.y === "pitch" ? [36, 96] : [-60, 0];
    else { var pad = modes.y === "pitch" ? 2 : 3; r = [lo - pad, hi + pad]; }
    yRanges[modes.y] = r;
    return r;
  }
  function yOf(v) {
    var r = yRange(), h = canvas.clientHeight - M.top - M.bottom;
    return M.top + (1 - (v - r[0]) / (r[1] - r[0])) * h;
  }
  function radius(i) { return 2 + 4.5 * Math.min(Math.max((level[i] + 60) / 60, 0), 1); }
  var KIND = { pitched: "#2563eb", noise: "#ea7a0c" };
  function colour(i) {
    if (modes.colour === "kind") return D.pitched[i] ? KIND.pitched : KIND.noise;
    return D.colour[i];
  }
  function lowerBound(t) {
    var a = 0, b = N;
    while (a < b) { var m = (a + b) >> 1; if (times[m] < t) a = m + 1; else b = m; }
    return a;
  }
  function visibleRange() {
    var pad = (view.t1 - view.t0) * 0.01;
    return [lowerBound(view.t0 - pad), lowerBound(view.t1 + pad)];
  }

  // ----------------------------------------------------------------------------------------- drawing

  function fitCanvas(c) {
    var dpr = window.devicePixelRatio || 1, w = Math.round(c.clientWidth * dpr), h = Math.round(c.clientHeight * dpr);
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    var g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    return g;
  }

  function niceStep(span, pixels, minPx) {
    var raw = span / Math.max(pixels / minPx, 1), p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var k = 0; k < steps.length; k++) if (steps[k] * p >= raw) return steps[k] * p;
    return 10 * p;
  }

  var TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  function timeStep(span, pixels) {
    var raw = span / Math.max(pixels / 90, 1);
    for (var k = 0; k < TIME_STEPS.length; k++) if (TIME_STEPS[k] >= raw) return TIME_STEPS[k];
    return niceStep(span, pixels, 90);
  }
  function drawTimeAxis(g, c, yBase, grid) {
    var step = timeStep(view.t1 - view.t0, plotWidth(c));
    g.fillStyle = "#5d6677";
    g.strokeStyle = grid ? "#e6e9ef" : "#5d6677";
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "center";
    g.textBaseline = "top";
    for (var k = Math.ceil(view.t0 / step - 1e-9); k * step <= view.t1 + 1e-9; k++) {
      var t = k * step, x = xOf(t, c);
      g.beginPath(); g.moveTo(x, grid ? M.top : yBase); g.lineTo(x, yBase + (grid ? 0 : 3)); g.stroke();
      g.fillText(fmtTime(t, step), x, yBase + 4);
    }
  }

  function drawYAxis(g) {
    var r = yRange(), h = canvas.clientHeight - M.bottom;
    g.save();
    g.fillStyle = "#5d6677";
    g.strokeStyle = "#eef0f4";
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "right";
    g.textBaseline = "middle";
    if (modes.y !== "projection") {
      var step = modes.y === "pitch" ? 12 : 10;
      if (modes.y === "pitch" && r[1] - r[0] < 30) step = 4;
      for (var v = Math.ceil(r[0] / step) * step; v <= r[1]; v += step) {
        var y = yOf(v);
        g.beginPath(); g.moveTo(M.left, y); g.lineTo(canvas.clientWidth - M.right, y); g.stroke();
        g.fillText(modes.y === "pitch" ? noteName(v) + " " + v : v + " dB", M.left - 6, y);
      }
    }
    g.translate(12, M.top + (h - M.top) / 2);
    g.rotate(-Math.PI / 2);
    g.textAlign = "center";
    var label = modes.y === "projection" ? D.projection + " of the event vectors" :
      modes.y === "pitch" ? "pitch (MIDI)" : "level (dBFS)";
    g.fillText(label, 0, 0);
    g.restore();
  }

  function drawPlayhead(g, c, top, bottom) {
    if (playhead === null || playhead < view.t0 || playhead > view.t1) return;
    var x = xOf(playhead, c);
    g.strokeStyle = "#d21f3c";
    g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x, top); g.lineTo(x, bottom); g.stroke();
    g.lineWidth = 1;
  }

  function drawTimeline() {
    var started = performance.now();
    var g = fitCanvas(canvas), w = canvas.clientWidth, h = canvas.clientHeight;
    g.clearRect(0, 0, w, h);
    drawTimeAxis(g, canvas, h - M.bottom, true);
    drawYAxis(g);
    g.save();
    g.beginPath();
    g.rect(M.left, 0, w - M.left - M.right, h);
    g.clip();
    var range = visibleRange(), count = 0, cross = modes.y === "pitch";
    g.globalAlpha = 0.85;
    for (var i = range[0]; i < range[1]; i++) {
      var x = xOf(times[i]), y = yOf(yValue(i)), r = radius(i);
      g.fillStyle = colour(i);
      if (cross && !D.pitched[i]) {
        g.strokeStyle = colour(i);
        g.lineWidth = 1.6;
        g.beginPath();
        g.moveTo(x - r, y - r); g.lineTo(x + r, y + r); g.moveTo(x + r, y - r); g.lineTo(x - r, y + r);
        g.stroke();
      } else {
        g.beginPath();
        g.arc(x, y, r, 0, 2 * Math.PI);
        g.fill();
      }
      count++;
    }
    g.globalAlpha = 1;
    g.lineWidth = 2;
    [hover, selected].forEach(function (k, n) {
      if (k < 0 || times[k] < view.t0 || times[k] > view.t1) return;
      g.strokeStyle = n ? "#111" : "#666";
      g.beginPath();
      g.arc(xOf(times[k]), yOf(yValue(k)), radius(k) + 3, 0, 2 * Math.PI);
      g.stroke();
    });
    g.lineWidth = 1;
    drawPlayhead(g, canvas, M.top, h - M.bottom);
    g.restore();
    hook.drawn = count;
    hook.lastDrawMs = performance.now() - started;
  }

  var specImages = [];
  function drawSpectra() {
    specCanvases.forEach(function (c, k) {
      var s = specImages[k], g = fitCanvas(c), w = c.clientWidth, h = c.clientHeight, bottom = h - 18;
      g.clearRect(0, 0, w, h);
      if (s.img.complete && s.img.naturalWidth) {
        var pxPerS = s.width / s.seconds;
        var a = Math.max(view.t0, 0), b = Math.min(view.t1, s.seconds);
        if (b > a) {
          g.imageSmoothingEnabled = true;
          g.drawImage(s.img, a * pxPerS, 0, (b - a) * pxPerS, s.height, xOf(a, c), 4, xOf(b, c) - xOf(a, c), bottom - 4);
        }
      }
      g.fillStyle = "#5d6677";
      g.font = "11px system-ui, sans-serif";
      g.textAlign = "right";
      g.textBaseline = "middle";
      [100, 1000, 10000].forEach(function (f) {
        if (f < s.f_lo || f > s.f_hi) return;
        var y = 4 + (1 - Math.log(f / s.f_lo) / Math.log(s.f_hi / s.f_lo)) * (bottom - 4);
        g.fillText(f >= 1000 ? f / 1000 + " kHz" : f + " Hz", M.left - 6, y);
      });
      g.save();
      g.translate(12, bottom / 2);
      g.rotate(-Math.PI / 2);
      g.textAlign = "center";
      g.fillText(s.label, 0, 0);
      g.restore();
      drawTimeAxis(g, c, bottom, false);
      drawPlayhead(g, c, 4, bottom);
    });
  }

  var frame = 0;
  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(function () { frame = 0; drawTimeline(); drawSpectra(); });
  }
  function redrawNow() { drawTimeline(); drawSpectra(); }

  // --------------------------------------------------------------------------------------- legend/ui

  function legend() {
    var el = $("legend");
    el.textContent = "";
    if (modes.colour !== "kind") { el.textContent = "similar colour = similar vector; size = level"; return; }
    [["pitched", KIND.pitched], ["noise", KIND.noise]].forEach(function (p) {
      var dot = document.createElement("i");
      dot.style.background = p[1];
      el.appendChild(dot);
      el.appendChild(document.createTextNode(p[0]));
    });
  }
  function yNote() {
    var text;
    if (modes.y === "projection") {
      text = D.projection === "t-SNE" ?
        "y: 1-D t-SNE of the events' unit-space vectors, as in spev plot (similar events sit at similar heights)." :
        "y: first principal component (PCA) of the events' unit-space vectors, as in spev plot (t-SNE is used from 5 to 3000 events).";
    } else if (modes.y === "pitch") {
      text = "y: pitch (MIDI) — a piano roll; unpitched events (×) at their noise centre.";
    } else {
      text = "y: level (dBFS).";
    }
    $("ynote").textContent = text;
  }
  $("ymode-projection").textContent = D.projection;

  // ---------------------------------------------------------------------------------------- tooltip

  var tip = $("tip");
  function describe(i) {
    var kind = D.pitched[i] ? "pitched" : "noise";
    var p = D.pitched[i] ? "pitch " + fmt(pitch[i]) + " MIDI (" + fmt(440 * Math.pow(2, (pitch[i] - 69) / 12)) + " Hz)" :
      "noise centre " + fmt(param(i, DIM.noise_centre)) + " Hz";
    return "event #" + i + " (of " + N + "): " + fmt(times[i]) + " s, " + kind + ", " + p + ", level " + fmt(level[i]) + " dBFS";
  }
  function showTip(i, clientX, clientY) {
    tip.textContent = "";
    var head = document.createElement("div");
    head.className = "head";
    head.textContent = "#" + i + " · " + fmt(times[i]) + " s · " + (D.pitched[i] ? "pitched" : "noise") +
      (D.pitched[i] ? " · " + noteName(pitch[i]) + " · " + fmt(440 * Math.pow(2, (pitch[i] - 69) / 12)) + " Hz" : "");
    head.setAttribute("data-event", String(i));
    tip.appendChild(head);
    var table = document.createElement("table"), half = Math.ceil(ND / 2), tr;
    for (var r = 0; r < half; r++) {
      tr = document.createElement("tr");
      [r, r + half].forEach(function (j) {
        if (j >= ND) return;
        var name = document.createElement("td"), value = document.createElement("td"), unit = document.createElement("td");
        name.className = "name"; value.className = "value"; unit.className = "unit";
        name.textContent = DIMS[j].name;
        value.textContent = fmt(param(i, j));
        value.setAttribute("data-dim", DIMS[j].name);
        unit.textContent = DIMS[j].unit;
        name.title = DIMS[j].doc;
        tr.appendChild(name); tr.appendChild(value); tr.appendChild(unit);
      });
      table.appendChild(tr);
    }
    tip.appendChild(table);
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var x = clientX + 16, y = clientY + 16;
    if (x + w > window.innerWidth - 4) x = Math.max(4, clientX - w - 16);
    if (y + h > window.innerHeight - 4) y = Math.max(4, clientY - h - 16);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
    hook.tipEvent = i;
  }
  function hideTip() { tip.hidden = true; hook.tipEvent = null; }

  function nearest(clientX, clientY, maxPx) {
    var rect = canvas.getBoundingClientRect(), x = clientX - rect.left, y = clientY - rect.top;
    var range = visibleRange(), best = -1, bestD = maxPx * maxPx;
    for (var i = range[0]; i < range[1]; i++) {
      var dx = xOf(times[i]) - x, dy = yOf(yValue(i)) - y, d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = i; }
    }
    return best;
  }
  function pointClient(i) {
    var rect = canvas.getBoundingClientRect();
    return [rect.left + xOf(times[i]), rect.top + yOf(yValue(i))];
  }

  // ------------------------------------------------------------------------------------------ audio

  var actx = null, source = null, buffers = new Map();
  function audioContext() {
    if (!actx) actx = new (window.AudioContext || window.webkitAudioContext)();
    if (actx.state === "suspended") actx.resume();
    return actx;
  }
  hook.audioState = function () { return actx ? actx.state : "none"; };
  var heads = null;
  function clipBytes(i) {
    var meta = CLIPS_META();
    if (!heads) heads = meta.heads.map(b64bytes);
    var head = heads[meta.head_of[i]], body = b64bytes(meta.clips[i]);
    var out = new Uint8Array(head.length + body.length);
    out.set(head, 0);
    out.set(body, head.length);
    return out;
  }
  hook.clipBase64 = function (i) { return bytesB64(clipBytes(i)); };

  function stopAll() {
    if (source) { try { source.stop(); } catch (e) { /* already stopped */ } source = null; }
    players.forEach(function (p) { if (p && !p.paused) p.pause(); });
  }
  function playClip(i) {
    var c = audioContext();
    stopAll();
    var cached = buffers.get(i);
    var ready = cached ? Promise.resolve(cached) : c.decodeAudioData(clipBytes(i).buffer).then(function (b) {
      if (buffers.size > 200) buffers.delete(buffers.keys().next().value);
      buffers.set(i, b);
      return b;
    });
    return ready.then(function (buffer) {
      var s = c.createBufferSource();
      s.buffer = buffer;
      s.connect(c.destination);
      s.start();
      source = s;
      hook.lastPlayed = i;
      hook.played++;
      status("playing event #" + i + " alone (" + buffer.duration.toFixed(2) + " s clip)");
    }, function (err) {
      fail("cannot decode the clip of event " + i + ": " + (err && err.message ? err.message : err));
    });
  }

  var players = [$("player-decode"), D.audio.original ? $("player-original") : null];
  var active = 0;
  function attach(k) {
    var p = players[k];
    if (!p || p.src) return;
    var text = $(k === 0 ? "spev-decode" : "spev-original").textContent;
    p.src = URL.createObjectURL(new Blob([b64bytes(text)], { type: "audio/ogg" }));
  }
  function playFull(t, k) {
    if (k === undefined) k = active;
    attach(k);
    stopAll();
    var p = players[k];
    p.currentTime = Math.max(0, t);
    active = k;
    var promise = p.play();
    hook.fullPlays++;
    status("playing the " + (k ? "original" : "full decode") + " from " + fmt(t) + " s");
    if (promise && promise.catch) promise.catch(function (e) { status("playback refused: " + e.message); });
    tick();
  }
  function tick() {
    var p = players[active];
    if (p && !p.paused) {
      playhead = p.currentTime;
      redraw();
      requestAnimationFrame(tick);
    } else {
      playhead = null;
      redraw();
    }
  }
  players.forEach(function (p, k) {
    if (!p) return;
    p.addEventListener("play", function () {
      active = k;
      players.forEach(function (q) { if (q && q !== p && !q.paused) q.pause(); });
      tick();
    });
  });
  if (D.audio.original) {
    $("ab").hidden = false;
    $("abswitch").addEventListener("click", function () {
      var from = players[active], t = from && from.src ? from.currentTime : 0;
      playFull(t, 1 - active);
    });
  }
  hook.players = players;

  function status(text) { $("status").textContent = text; }

  // ------------------------------------------------------------------------------------ interaction

  function select(i, announce) {
    selected = i;
    hook.selected = i;
    if (i < 0) return;
    var span = view.t1 - view.t0;
    if (times[i] < view.t0 || times[i] > view.t1) {
      view.t0 = Math.max(0, Math.min(times[i] - span / 2, FULL - span));
      view.t1 = view.t0 + span;
    }
    redrawNow();
    if (announce) {
      var pt = pointClient(i);
      showTip(i, pt[0], pt[1]);
      status(describe(i));
    }
  }

  function zoom(factor, centreT) {
    var span = Math.min(Math.max((view.t1 - view.t0) * factor, 0.05), FULL);
    var f = (centreT - view.t0) / (view.t1 - view.t0);
    view.t0 = Math.max(0, Math.min(centreT - f * span, FULL - span));
    view.t1 = view.t0 + span;
    redraw();
  }
  function pan(dt) {
    var span = view.t1 - view.t0;
    view.t0 = Math.max(0, Math.min(view.t0 + dt, FULL - span));
    view.t1 = view.t0 + span;
    redraw();
  }
  hook.pan = function (dt) { pan(dt); drawTimeline(); drawSpectra(); };
  hook.zoom = function (factor) { zoom(factor, (view.t0 + view.t1) / 2); redrawNow(); };
  hook.view = function () { return [view.t0, view.t1]; };
  hook.points = function () {
    var range = visibleRange(), out = [];
    for (var i = range[0]; i < range[1]; i++) { var p = pointClient(i); out.push([i, p[0], p[1]]); }
    return out;
  };
  hook.point = pointClient;

  var drag = null;
  function onWheel(e, c) {
    e.preventDefault();
    var rect = c.getBoundingClientRect();
    zoom(Math.exp(e.deltaY * 0.0015), tOf(e.clientX - rect.left, c));
  }
  function onDown(e, c) {
    if (e.button !== 0) return;
    drag = { x: e.clientX, t0: view.t0, moved: false, canvas: c };
  }
  window.addEventListener("mousemove", function (e) {
    if (drag && e.buttons & 1) {
      var dx = e.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) {
        var span = view.t1 - view.t0;
        view.t0 = Math.max(0, Math.min(drag.t0 - dx / plotWidth(drag.canvas) * span, FULL - span));
        view.t1 = view.t0 + span;
        hideTip();
        redraw();
      }
    }
  });
  window.addEventListener("mouseup", function () { setTimeout(function () { drag = null; }, 0); });

  canvas.addEventListener("wheel", function (e) { onWheel(e, canvas); }, { passive: false });
  canvas.addEventListener("mousedown", function (e) { onDown(e, canvas); });
  canvas.addEventListener("mousemove", function (e) {
    if (drag && drag.moved) return;
    var i = nearest(e.clientX, e.clientY, 10);
    if (i !== hover) { hover = i; redraw(); }
    if (i >= 0) showTip(i, e.clientX, e.clientY); else hideTip();
  });
  canvas.addEventListener("mouseleave", function () { hover = -1; hideTip(); redraw(); });
  canvas.addEventListener("click", function (e) {
    if (drag && drag.moved) return;
    var i = nearest(e.clientX, e.clientY, 10);
    var rect = canvas.getBoundingClientRect();
    if (e.shiftKey) {
      playFull(i >= 0 ? times[i] : Math.max(0, tOf(e.clientX - rect.left)));
      return;
    }
    if (i < 0) return;
    select(i, false);
    status(describe(i));
    playClip(i);
  });
  canvas.addEventListener("keydown", function (e) {
    var k = e.key, next = selected;
    if (k === "ArrowRight") next = selected < 0 ? lowerBound(view.t0) : Math.min(selected + 1, N - 1);
    else if (k === "ArrowLeft") next = selected < 0 ? lowerBound(view.t0) : Math.max(selected - 1, 0);
    else if (k === "ArrowUp") next = selected < 0 ? lowerBound(view.t0) : Math.min(selected + 10, N - 1);
    else if (k === "ArrowDown") next = selected < 0 ? lowerBound(view.t0) : Math.max(selected - 10, 0);
    else if (k === "Home") next = 0;
    else if (k === "End") next = N - 1;
    else if (k === " " || k === "Enter") {
      e.preventDefault();
      if (selected < 0 && N) select(lowerBound(view.t0), true);
      if (selected < 0) return;
      if (e.shiftKey) playFull(times[selected]); else playClip(selected);
      return;
    } else if (k === "+" || k === "=") { zoom(0.5, selected >= 0 ? times[selected] : (view.t0 + view.t1) / 2); return; }
    else if (k === "-") { zoom(2, selected >= 0 ? times[selected] : (view.t0 + view.t1) / 2); return; }
    else if (k === "0") { view.t0 = 0; view.t1 = FULL; redraw(); return; }
    else if (k === "Escape") { stopAll(); hideTip(); return; }
    else return;
    e.preventDefault();
    if (N && next >= 0 && next < N) select(next, true);
  });

  $("ymode").addEventListener("change", function (e) { modes.y = e.target.value; yNote(); hideTip(); redrawNow(); });
  $("cmode").addEventListener("change", function (e) { modes.colour = e.target.value; legend(); redrawNow(); });
  $("reset").addEventListener("click", function () { view.t0 = 0; view.t1 = FULL; redraw(); });
  $("stop").addEventListener("click", stopAll);
  window.addEventListener("resize", redraw);
  hook.setMode = function (y, c) {
    if (y) { modes.y = y; $("ymode").value = y; yNote(); }
    if (c) { modes.colour = c; $("cmode").value = c; legend(); }
    hideTip();
    redrawNow();
  };

  // ---------------------------------------------------------------------------------------- startup

  var specs = $("specs"), loads = [];
  [["input", "input"], ["decode", "decode"]].forEach(function (p) {
    var s = D.spectra[p[0]];
    if (!s) return;
    var c = document.createElement("canvas");
    c.setAttribute("role", "img");
    c.setAttribute("aria-label", p[1] + " spectrogram");
    specs.appendChild(c);
    var img = new Image();
    loads.push(new Promise(function (resolve) {
      img.onload = function () { resolve(); redraw(); };
      img.onerror = function () { fail("cannot show the " + p[1] + " spectrogram"); resolve(); };
    }));
    img.src = "data:image/jpeg;base64," + s.jpeg;
    specImages.push({ img: img, width: s.width, height: s.height, seconds: s.seconds, f_lo: s.f_lo, f_hi: s.f_hi, label: p[1] + " (Hz)" });
    specCanvases.push(c);
    c.addEventListener("wheel", function (e) { onWheel(e, c); }, { passive: false });
    c.addEventListener("mousedown", function (e) { onDown(e, c); });
    c.addEventListener("click", function (e) {
      if (drag && drag.moved) return;
      var rect = c.getBoundingClientRect();
      playFull(Math.max(0, tOf(e.clientX - rect.left, c)), p[0] === "input" && players[1] ? 1 : 0);
    });
  });
  if (!N) {
    var empty = $("empty");
    empty.textContent = "This file has no events: there is nothing to draw or to play.";
    empty.hidden = false;
    canvas.setAttribute("aria-label", "No events");
  }
  legend();
  yNote();
  redrawNow();
  Promise.all(loads).then(function () {
    redrawNow();
    attach(0);
    if (players[1]) attach(1);
    hook.readyMs = performance.now();
    hook.ready = true;
  });
})();
