// vaekit explore: the page. Plain JS, no libraries. The server encodes and decodes; the page
// keeps the current code z = centre + x * plane[0] + y * plane[1] + sum_i s_i * direction_i.
"use strict";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];
// a continuous scale (viridis, sampled at 9 points) for maps coloured by a number such as logP
const SCALE = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];
const state = { info: null, base: null, sliders: [], busy: false, pending: null, picks: [], version: 0, range: null,
                samples: [] };
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const opts = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "hint error" : "hint";
}

// -- map geometry ----------------------------------------------------------------------------
let bounds = null;
function computeBounds(points) {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of points) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const px = 0.08 * (x1 - x0 || 1), py = 0.08 * (y1 - y0 || 1);
  return { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
}
function toCanvas(x, y, c) {
  return [(x - bounds.x0) / (bounds.x1 - bounds.x0) * c.width, (bounds.y1 - y) / (bounds.y1 - bounds.y0) * c.height];
}
function fromCanvas(px, py, c) {
  return [bounds.x0 + px / c.width * (bounds.x1 - bounds.x0), bounds.y1 - py / c.height * (bounds.y1 - bounds.y0)];
}
function planeToZ(x, y) {
  const { centre, plane } = state.info;
  return centre.map((c, i) => c + x * plane[0][i] + (plane.length > 1 ? y * plane[1][i] : 0));
}

// the range of the colour values, and a value's colour (linear between the scale's points; grey when missing)
function valueRange(values) {
  const ok = values.filter((v) => v !== null && Number.isFinite(v));
  if (!ok.length) return [0, 1];
  const lo = Math.min(...ok), hi = Math.max(...ok);
  return [lo, hi > lo ? hi : lo + 1];
}
function hexRGB(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
function scaleColour(v, [lo, hi]) {
  if (v === null || !Number.isFinite(v)) return "#bbbbbb";
  const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * (SCALE.length - 1);
  const i = Math.min(SCALE.length - 2, Math.floor(t)), f = t - i;
  const a = hexRGB(SCALE[i]), b = hexRGB(SCALE[i + 1]);
  return `rgb(${a.map((x, k) => Math.round(x + f * (b[k] - x))).join(",")})`;
}
function pointColour(i) {
  const info = state.info;
  if (info.values) return scaleColour(info.values[i], state.range);
  return info.labels ? COLOURS[((info.labels[i] % 10) + 10) % 10] : "#1f77b4";
}

function drawMap(marker) {
  const c = $("map"), g = c.getContext("2d"), info = state.info;
  g.clearRect(0, 0, c.width, c.height);
  info.points.forEach(([x, y], i) => {
    const [px, py] = toCanvas(x, y, c);
    g.fillStyle = pointColour(i);
    g.globalAlpha = 0.6;
    g.fillRect(px - 1.5, py - 1.5, 3, 3);
  });
  g.globalAlpha = 1;
  for (const [k, i] of state.picks.entries()) {
    const [px, py] = toCanvas(...info.points[i], c);
    g.strokeStyle = "#000"; g.lineWidth = 2;
    g.strokeRect(px - 5, py - 5, 10, 10);
    g.fillStyle = "#000"; g.fillText(k === 0 ? "A" : "B", px + 7, py - 7);
  }
  g.strokeStyle = "#000"; g.lineWidth = 1.5;
  for (const [x, y] of state.samples) {       // drawn codes: a cross each
    const [px, py] = toCanvas(x, y, c);
    g.beginPath(); g.moveTo(px - 4, py - 4); g.lineTo(px + 4, py + 4); g.moveTo(px + 4, py - 4); g.lineTo(px - 4, py + 4);
    g.stroke();
  }
  if (marker) {
    const [px, py] = toCanvas(marker[0], marker[1], c);
    g.strokeStyle = "#d00"; g.lineWidth = 2;
    g.beginPath(); g.arc(px, py, 6, 0, 2 * Math.PI); g.stroke();
  }
}

// -- decoding ---------------------------------------------------------------------------------
// the axes' and coordinates' sliders move the code on straight lines; an attribute's keeps its norm
// (latent.apply_attribute(..., method="spherical")): far along a straight line the decoder draws blots
function currentZ() {
  const z = state.base.slice();
  const add = (attribute) => state.info.directions.forEach((d, j) => {
    const s = state.sliders[j];
    if (s && (d.type === "attribute") === attribute) for (let i = 0; i < z.length; i++) z[i] += s * d.vector[i];
  });
  const norm = () => Math.hypot(...z);
  add(false);
  const r = norm();
  add(true);
  const moved = norm();
  if (moved > 0 && r > 0) for (let i = 0; i < z.length; i++) z[i] *= r / moved;
  return z;
}

// at most one decode request in flight; the newest wish wins (dragging a slider stays smooth)
async function requestDecode() {
  state.pending = currentZ();
  if (state.busy) return;
  state.busy = true;
  try {
    while (state.pending) {
      const z = state.pending;
      state.pending = null;
      const t0 = performance.now();
      const body = { z: [z] };
      if (state.info.kind === "font") body.word = $("word").value || "Latent";
      const out = await api("/api/decode", body);
      showItem(out.items[0]);
      state.version += 1;
      $("view").dataset.version = String(state.version);
      setStatus(`decoded in ${(performance.now() - t0).toFixed(0)} ms`);
    }
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    state.busy = false;
  }
}

// a decoded molecule: RDKit's SVG drawing in an <img> (a data: URL, so no markup enters the page), or the
// string and "invalid"; then a small table of the molecule's properties beside the property head's prediction
function moleculeFigure(item, height) {
  const fig = document.createElement("figure");
  if (item.svg) {
    const img = document.createElement("img");
    img.src = item.svg;
    img.alt = item.smiles;
    if (height) img.style.height = `${height}px`;
    fig.append(img);
  } else {
    const bad = document.createElement("div");
    bad.className = "invalid";
    bad.textContent = "invalid";
    if (height) bad.style.height = bad.style.lineHeight = `${height}px`;
    fig.append(bad);
  }
  const cap = document.createElement("figcaption");
  cap.textContent = item.canonical || item.smiles || "(empty)";
  fig.title = item.smiles;
  fig.append(cap);
  return fig;
}

function fmt(v) { return v === null || v === undefined ? "–" : v.toFixed(2); }

function showMolecule(item) {
  const img = $("decoded"), bad = $("invalid");
  if (item.svg) { img.src = item.svg; img.hidden = false; bad.hidden = true; }
  else { img.hidden = true; bad.hidden = false; }
  const rows = [["decoded", item.smiles || "(empty)"], ["valid", item.valid ? "yes" : "invalid"]];
  if (item.valid) rows.push(["canonical", item.canonical], ["MOSES filters", item.filters]);
  const table = document.createElement("table");
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    const td = tr.insertCell();
    td.textContent = v;
    td.colSpan = 2;
    if ((k === "valid" && !item.valid) || (k === "MOSES filters" && v !== "pass")) td.className = "error";
  }
  const head = table.insertRow();
  ["property", "molecule", "predicted"].forEach((h) => { const th = document.createElement("th"); th.textContent = h; head.append(th); });
  for (const p of ["logP", "QED", "SAS"]) {
    const tr = table.insertRow();
    tr.insertCell().textContent = p === "SAS" ? "SA score" : p;
    tr.insertCell().textContent = fmt(item.props ? item.props[p] : null);
    tr.insertCell().textContent = fmt(item.predicted ? item.predicted[p] : null);
  }
  $("mol-info").replaceChildren(table);
}

function showItem(item) {
  if (state.info.kind === "molecule") {
    showMolecule(item);
  } else if (state.info.kind === "field") {
    $("decoded").hidden = true;
    const c = $("field");
    c.hidden = false;
    plotLine(c, item);
  } else {
    $("decoded").src = item;
  }
}

function plotLine(c, values) {
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  g.strokeStyle = "#1f77b4"; g.lineWidth = 1.5;
  g.beginPath();
  values.forEach((v, i) => {
    const x = 4 + i / Math.max(1, values.length - 1) * (c.width - 8);
    const y = c.height - 4 - (v - lo) / span * (c.height - 8);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#666"; g.font = "10px sans-serif";
  g.fillText(hi.toPrecision(3), 4, 10); g.fillText(lo.toPrecision(3), 4, c.height - 6);
}

// -- sliders ----------------------------------------------------------------------------------
function buildSliders() {
  const box = $("sliders");
  box.replaceChildren();
  state.sliders = state.info.directions.map(() => 0);
  state.info.directions.forEach((d, j) => {
    const label = document.createElement("label");
    const name = document.createElement("span");
    name.textContent = d.name + (d.type === "attribute" ? " ★" : "");
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: -3, max: 3, step: 0.05, value: 0 });
    input.dataset.name = d.name;
    input.className = "slider" + (d.type === "attribute" ? " attribute" : "");
    const val = document.createElement("span");
    val.textContent = "0.00";
    input.addEventListener("input", () => {
      state.sliders[j] = parseFloat(input.value);
      val.textContent = state.sliders[j].toFixed(2);
      requestDecode();
    });
    label.append(name, input, val);
    box.append(label);
  });
}

// -- interpolation ----------------------------------------------------------------------------
async function interpolate() {
  const body = { a: parseInt($("ia").value, 10), b: parseInt($("ib").value, 10),
                 steps: parseInt($("isteps").value, 10), method: $("imethod").value };
  if (state.info.kind === "font") body.word = $("word").value || "Latent";
  const box = $("path");
  try {
    showItems(box, (await api("/api/interpolate", body)).items);
  } catch (e) {
    box.textContent = e.message;
    box.className = "error";
  }
}

// a row of small decoded items: an interpolation path or a set of samples
function showItems(box, items) {
  box.replaceChildren();
  box.className = "";
  for (const item of items) {
    if (state.info.kind === "molecule") {
      box.append(moleculeFigure(item, 90));
    } else if (state.info.kind === "field") {
      const c = document.createElement("canvas");
      c.width = 120; c.height = 60;
      plotLine(c, item);
      box.append(c);
    } else {
      const img = document.createElement("img");
      img.src = item;
      box.append(img);
    }
  }
}

// -- samples --------------------------------------------------------------------------------------
async function drawSamples() {
  const body = { sampler: $("sampler").value, n: parseInt($("sn").value, 10), seed: parseInt($("sseed").value, 10) };
  if (state.info.kind === "font") body.word = $("word").value || "Latent";
  const box = $("samples");
  box.textContent = "drawing…";
  try {
    const out = await api("/api/sample", body);
    showItems(box, out.items);
    box.dataset.sampler = out.sampler;
    state.samples = out.xy;
    drawMap();
  } catch (e) {
    box.textContent = e.message;
    box.className = "error";
  }
}

// -- start --------------------------------------------------------------------------------------
async function main() {
  const info = await api("/api/info");
  state.info = info;
  const noun = { font: "fonts", molecule: "molecules" }[info.kind] || "items";
  $("run-info").textContent = `${info.run}: ${info.model}, ${info.latent_dim}-D latent, ${info.n} ${noun}`;
  if (info.kind === "molecule") {
    $("decoded").className = "molecule";
    $("mol-info").hidden = false;
  }
  $("font-word").hidden = info.kind !== "font";
  if (info.kind === "font") $("decoded").className = "font";
  $("ib").value = Math.min(1, info.n - 1);
  $("ia").max = $("ib").max = info.n - 1;
  bounds = computeBounds(info.points);
  if (info.values) {             // continuous colours: a bar from the smallest to the largest value
    state.range = valueRange(info.values);
    const name = document.createElement("span");
    name.textContent = info.value_name || "value";
    const lo = document.createElement("span"), hi = document.createElement("span");
    lo.textContent = state.range[0].toFixed(2);
    hi.textContent = state.range[1].toFixed(2);
    const bar = document.createElement("b");
    bar.className = "scale";
    bar.style.background = `linear-gradient(to right, ${SCALE.join(", ")})`;
    $("legend").replaceChildren(name, lo, bar, hi);
    $("legend").className = "continuous";
  } else if (info.labels) {
    const seen = [...new Set(info.labels)].sort((a, b) => a - b).slice(0, 10);
    $("legend").replaceChildren(...seen.map((l) => {   // DOM nodes, no markup: the CSP allows no inline styles
      const span = document.createElement("span"), swatch = document.createElement("i");
      swatch.style.background = COLOURS[((l % 10) + 10) % 10];
      span.append(swatch, String(l));
      return span;
    }));
  }
  state.base = planeToZ(...info.points[0]);
  drawMap(info.points[0]);
  buildSliders();

  const c = $("map");
  const at = (ev) => { const r = c.getBoundingClientRect();
    return fromCanvas((ev.clientX - r.left) * c.width / r.width, (ev.clientY - r.top) * c.height / r.height, c); };
  let pinned = false;
  c.addEventListener("mousemove", (ev) => {
    if (pinned) return;
    const [x, y] = at(ev);
    state.base = planeToZ(x, y);
    drawMap([x, y]);
    requestDecode();
  });
  c.addEventListener("mouseleave", () => { pinned = false; });
  c.addEventListener("click", (ev) => {
    const [x, y] = at(ev);
    if (ev.shiftKey) {           // pick the nearest item for interpolation
      let best = 0, bd = Infinity;
      info.points.forEach(([px, py], i) => { const d = (px - x) ** 2 + (py - y) ** 2; if (d < bd) { bd = d; best = i; } });
      state.picks = [...state.picks, best].slice(-2);
      if (state.picks.length === 2) { $("ia").value = state.picks[0]; $("ib").value = state.picks[1]; }
    }
    pinned = true;             // a click holds the point until the mouse leaves the map
    state.base = planeToZ(x, y);
    drawMap([x, y]);
    requestDecode();
  });
  $("reset").addEventListener("click", () => {
    document.querySelectorAll("#sliders input").forEach((s) => { s.value = 0; s.dispatchEvent(new Event("input")); });
  });
  $("interp").addEventListener("click", interpolate);
  $("sampler").replaceChildren(...(info.samplers || ["prior"]).map((name) => {
    const o = document.createElement("option");
    o.value = o.textContent = name;
    o.selected = name === "prior";
    return o;
  }));
  $("draw").addEventListener("click", drawSamples);
  if (info.smiles) {           // a molecule run: name the two end molecules of the path
    const ends = () => {
      const name = (id) => info.smiles[parseInt($(id).value, 10)] || "?";
      $("ends").textContent = `from ${name("ia")} to ${name("ib")}`;
    };
    $("ends").hidden = false;
    ["ia", "ib"].forEach((id) => $(id).addEventListener("input", ends));
    $("interp").addEventListener("click", ends);
    ends();
  }
  $("word").addEventListener("change", requestDecode);
  await requestDecode();
  document.body.dataset.ready = "1";
}

main().catch((e) => setStatus("could not start: " + e.message, true));
