// The explorer's page. Everything comes from this server's /api (see serve/doc.go); maps arrive
// as PNGs coloured on the server, with their value range in X-Map-Min / X-Map-Max.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  source: null,      // URLSearchParams naming the image: image=NAME or upload=ID
  analysis: null,
  kind: null,        // a kind name from /api/info
  cls: null,         // class index for per-class kinds
  step: null,        // self-attention applications for kinds with steps
  latent: null,      // a selected latent shows its encoder map instead of the kind's
  cmap: "viridis",    // colour map of unsigned maps (the user's choice, else the first offered)
  cmapSigned: null,  // of signed maps (attributions): the user's choice, else "diverging"
  mapURL: null,      // object URL of the overlay, revoked when replaced
  mapRequest: 0,     // drops answers to superseded map requests
  mapBusy: false,    // a map request is in flight
  mapStale: false,   // the controls changed while it was
};

// ---- requests ---------------------------------------------------------------------------------

function setStatus(text) { $("status").textContent = text || ""; }

// fetchOK fetches url and throws with the server's JSON error; a 503 is retried after the
// Retry-After the server sends, a few times.
async function fetchOK(url, options, attempt = 0) {
  const resp = await fetch(url, options);
  if (resp.status === 503 && attempt < 5) {
    const wait = Math.max(1, parseInt(resp.headers.get("Retry-After") || "1", 10));
    setStatus(`server busy, retrying in ${wait} s…`);
    await new Promise((r) => setTimeout(r, wait * 1000));
    return fetchOK(url, options, attempt + 1);
  }
  if (!resp.ok) {
    let msg = `${resp.status} ${resp.statusText}`;
    try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return resp;
}

async function getJSON(url) { return (await fetchOK(url)).json(); }

function api(path, extra) {
  const p = new URLSearchParams(state.source || "");
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return `/api/${path}?${p}`;
}

// ---- page setup -------------------------------------------------------------------------------

async function start() {
  state.info = await getJSON("/api/info");
  const info = state.info;
  const chips = [info.model, `input ${info.input[0]}×${info.input[1]}`, `${info.latents} latents`,
    `${info.applications} self-attention applications`, `${info.labels} classes`];
  for (const c of chips.filter(Boolean)) {
    const s = document.createElement("span");
    s.className = "chip";
    s.textContent = c;
    $("model-info").append(s);
  }
  for (const name of info.colormaps) $("cmap").append(new Option(name, name));
  state.cmap = info.colormaps[0];
  state.cmapSigned = info.colormaps.includes("diverging") ? "diverging" : state.cmap;
  state.kind = info.kinds.length ? info.kinds[0].name : null;
  buildKinds();
  $("step").max = info.applications;
  $("step").value = info.applications;
  state.step = info.applications;
  showStep();
  setColorbar();
  wireControls();

  const params = new URLSearchParams(location.search);
  const listing = info.images ? loadImages() : Promise.resolve();
  if (!info.images) $("thumbs-empty").hidden = false;
  if (info.features) loadFeatures();
  if (info.sae) loadSAE();
  // A deep link is already the address: no history entry for it.
  if (params.get("image")) selectSource(new URLSearchParams({ image: params.get("image") }), false);
  else if (params.get("upload")) selectSource(new URLSearchParams({ upload: params.get("upload") }), false);
  else {
    await listing;
    const first = document.querySelector(".thumb");
    if (first) first.click();
  }
}

// buildKinds makes one row of buttons for the class-agnostic kinds and one for the
// class-specific ones, which take the class selector.
function buildKinds() {
  const box = $("kinds");
  box.textContent = "";
  const groups = [["", state.info.kinds.filter((k) => !k.per_class)],
    ["for a class", state.info.kinds.filter((k) => k.per_class)]];
  for (const [label, kinds] of groups) {
    if (!kinds.length) continue;
    const row = document.createElement("div");
    row.className = "kind-row";
    if (label) {
      const l = document.createElement("span");
      l.className = "hint";
      l.textContent = label;
      row.append(l);
    }
    const seg = document.createElement("div");
    seg.className = "segmented";
    for (const k of kinds) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = k.title;
      b.title = k.help;
      b.dataset.kind = k.name;
      b.addEventListener("click", () => { state.kind = k.name; state.latent = null; refresh(); });
      seg.append(b);
    }
    row.append(seg);
    box.append(row);
  }
}

function currentKind() { return state.info.kinds.find((k) => k.name === state.kind); }

// The map shown is signed when it is a signed kind's (a latent's map never is).
function signedMap() {
  const k = currentKind();
  return state.latent === null && !!k && k.signed;
}

// currentCmap is the colour map of the map shown: signed maps have their own choice, by default
// the diverging map, so that choosing one for attributions does not change it for attention.
function currentCmap() { return signedMap() ? state.cmapSigned : state.cmap; }

function wireControls() {
  $("opacity").addEventListener("input", () => { $("overlay").style.opacity = $("opacity").value / 100; });
  $("overlay").style.opacity = $("opacity").value / 100;
  $("cmap").addEventListener("change", () => {
    if (signedMap()) state.cmapSigned = $("cmap").value;
    else state.cmap = $("cmap").value;
    setColorbar();
    loadMap();
  });
  $("step").addEventListener("input", () => { state.step = +$("step").value; showStep(); loadMap(); });
  $("class").addEventListener("change", () => { state.cls = +$("class").value; loadMap(); });
  $("upload").addEventListener("change", () => { if ($("upload").files[0]) uploadFile($("upload").files[0]); });
  const gallery = $("gallery");
  gallery.addEventListener("dragover", (e) => { e.preventDefault(); gallery.classList.add("dragging"); });
  gallery.addEventListener("dragleave", () => gallery.classList.remove("dragging"));
  gallery.addEventListener("drop", (e) => {
    e.preventDefault();
    gallery.classList.remove("dragging");
    if (e.dataTransfer.files[0]) uploadFile(e.dataTransfer.files[0]);
  });
  window.addEventListener("popstate", () => {
    const p = new URLSearchParams(location.search);
    if (p.get("image")) selectSource(new URLSearchParams({ image: p.get("image") }), false);
    else if (p.get("upload")) selectSource(new URLSearchParams({ upload: p.get("upload") }), false);
  });
}

function showStep() {
  const j = +$("step").value;
  $("step-value").textContent = `rollout through applications 1…${j} of ${state.info.applications}` + (j === 0 ? " (none: the decoder map)" : "");
}

function setColorbar() {
  const cmap = currentCmap();
  $("cmap").value = cmap;
  $("colorbar").src = `/api/colorbar.png?cmap=${encodeURIComponent(cmap)}`;
}

// ---- images -----------------------------------------------------------------------------------

async function loadImages() {
  const list = await getJSON("/api/images");
  const box = $("thumbs");
  for (const im of list.images) box.append(thumb(new URLSearchParams({ image: im.name }), im.name));
  if (!list.images.length) $("thumbs-empty").hidden = false;
  if (list.truncated) setStatus(`showing the first ${list.images.length} images`);
  markSelected();
}

function thumb(source, name) {
  const a = document.createElement("a");
  a.className = "thumb";
  a.href = `/?${source}`;
  a.dataset.source = source.toString();
  a.title = name;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = name;
  img.addEventListener("error", () => {
    // A file the decoder refuses (format, size): say so instead of a broken image.
    const note = document.createElement("div");
    note.className = "thumb-error";
    note.textContent = "cannot decode";
    img.replaceWith(note);
  });
  img.src = `/api/thumb?${source}`;
  const label = document.createElement("span");
  label.textContent = name;
  a.append(img, label);
  a.addEventListener("click", (e) => { e.preventDefault(); selectSource(source); });
  return a;
}

function markSelected() {
  const key = state.source ? state.source.toString() : "";
  for (const t of document.querySelectorAll(".thumb")) t.classList.toggle("selected", t.dataset.source === key);
}

async function uploadFile(file) {
  if (file.size > state.info.max_upload) {
    setStatus(`${file.name}: larger than ${state.info.max_upload >> 20} MB`);
    return;
  }
  const form = new FormData();
  form.append("file", file);
  setStatus(`uploading ${file.name}…`);
  try {
    const a = await (await fetchOK("/api/upload", { method: "POST", body: form })).json();
    const source = new URLSearchParams({ upload: a.upload });
    if (!document.querySelector(`.thumb[data-source="${source}"]`)) $("thumbs").prepend(thumb(source, a.name));
    setStatus("");
    selectSource(source, true, a);
  } catch (err) {
    setStatus(`${file.name}: ${err.message}`);
  } finally {
    $("upload").value = "";
  }
}

// selectSource shows an image: its analysis, top-5, latents and map. push records it in the URL
// so that the address is a deep link.
async function selectSource(source, push = true, analysis = null) {
  state.source = source;
  state.latent = null;
  if (push) history.pushState(null, "", `/?${source}`);
  markSelected();
  const name = source.get("image") || source.get("upload");
  $("image-name").textContent = name;
  $("top5").textContent = "";
  $("latents").textContent = "";
  $("stage").classList.add("empty");
  delete $("overlay").dataset.map; // until this image's map has loaded
  setStatus(`analysing ${name}…`);
  try {
    const a = analysis || await getJSON(api("analysis"));
    if (state.source !== source) return; // another image was picked meanwhile
    state.analysis = a;
    $("image-name").textContent = a.name;
    setStatus("");
    $("stage").style.aspectRatio = `${a.width} / ${a.height}`;
    $("base").src = api("input.png");
    showTop(a);
    showLatents(a);
    state.cls = a.top.length ? a.top[0].index : 0;
    refresh();
    if (state.info.sae) loadActive(source);
  } catch (err) {
    if (state.source === source) setStatus(`${name}: ${err.message}`);
  }
}

// ---- predictions and latents ------------------------------------------------------------------

function pct(p) { return `${(100 * p).toFixed(p >= 0.1 ? 1 : 2)}%`; }

function showTop(a) {
  const ol = $("top5");
  ol.textContent = "";
  for (const t of a.top) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = t.label || `class ${t.index}`;
    name.title = `class ${t.index}`;
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = pct(t.prob);
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = `${Math.max(0.5, 100 * t.prob)}%`;
    bar.append(fill);
    li.append(name, prob, bar);
    ol.append(li);
  }
  const sel = $("class");
  sel.textContent = "";
  for (const t of a.top) sel.append(new Option(`${t.label || t.index} (${pct(t.prob)})`, t.index));
}

function showLatents(a) {
  const box = $("latents");
  box.textContent = "";
  const cols = Math.ceil(Math.sqrt(2 * a.latents));
  box.style.gridTemplateColumns = `repeat(${cols}, 1fr)`;
  box.classList.toggle("dense", cols > 16);
  const maxD = Math.max(...a.decoder);
  const order = [...a.decoder.keys()].sort((x, y) => a.decoder[y] - a.decoder[x]);
  const rank = new Array(a.latents);
  order.forEach((l, i) => { rank[l] = i + 1; });
  for (let l = 0; l < a.latents; l++) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "latent";
    b.dataset.latent = l;
    b.title = `latent ${l}: decoder weight ${a.decoder[l].toPrecision(3)} (rank ${rank[l]})`;
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.opacity = maxD > 0 ? (0.08 + 0.92 * a.decoder[l] / maxD).toFixed(3) : 0;
    b.append(fill);
    b.addEventListener("click", () => {
      state.latent = state.latent === l ? null : l;
      refresh();
    });
    box.append(b);
  }
  state.rank = rank;
}

function showLatentInfo() {
  const a = state.analysis;
  const info = $("latent-info");
  for (const b of document.querySelectorAll(".latent")) b.classList.toggle("selected", +b.dataset.latent === state.latent);
  if (state.latent === null) {
    info.textContent = "Click a latent to see its encoder cross-attention.";
    return;
  }
  const l = state.latent;
  info.textContent = "";
  const head = document.createElement("b");
  head.textContent = `latent ${l}`;
  info.append(head, document.createTextNode(
    ` · decoder weight ${a.decoder[l].toPrecision(3)} (rank ${state.rank[l]} of ${a.latents})` +
    ` · rollout weight ${a.rollout[l].toPrecision(3)}. The map is this latent's attention over the pixels.`));
}

// ---- maps -------------------------------------------------------------------------------------

// refresh syncs the controls with the state and loads the map they describe.
function refresh() {
  const k = currentKind();
  for (const b of $("kinds").children) b.classList.toggle("active", state.latent === null && b.dataset.kind === state.kind);
  const perClass = state.latent === null && k && k.per_class;
  $("class-control").hidden = !perClass;
  $("step").disabled = !(state.latent === null && k && k.steps);
  setColorbar();
  showLatentInfo();
  loadMap();
}

// loadMap shows the map the controls describe. One request is in flight at a time: input while
// it runs (dragging the slider) only marks the map stale, and the latest state is fetched when
// the request ends, so the server computes no map that would be thrown away.
async function loadMap() {
  if (state.mapBusy) {
    state.mapStale = true;
    return;
  }
  state.mapBusy = true;
  try {
    do {
      state.mapStale = false;
      await fetchMap();
    } while (state.mapStale);
  } finally {
    state.mapBusy = false;
  }
}

async function fetchMap() {
  if (!state.analysis) return;
  const k = currentKind();
  const cmap = currentCmap();
  let url, title, help, key, waiting = "";
  if (state.latent !== null) {
    url = api("latent.png", { latent: state.latent, cmap });
    title = `latent ${state.latent}`;
    help = "Encoder cross-attention of one latent: its distribution over the input pixels.";
    key = `latent:${state.latent}`;
  } else if (k) {
    const extra = { kind: k.name, cmap };
    key = `kind:${k.name}`;
    title = k.title;
    if (k.steps) { extra.step = state.step; key += `:${state.step}`; title += ` through ${state.step} of ${state.info.applications}`; }
    if (k.per_class) {
      extra.class = state.cls;
      key += `:c${state.cls}`;
      const t = state.analysis.top.find((p) => p.index === state.cls);
      title += ` for ${t && t.label ? t.label : `class ${state.cls}`}`;
    }
    url = api("map.png", extra);
    help = k.help;
    // A costly map runs the model again (backward passes): say so while it computes.
    if (k.costly) waiting = `computing ${title}…`;
  } else {
    return;
  }
  key += `|${cmap}`; // e.g. "kind:rollout:4|viridis", "latent:3|hot" or "kind:chefer:c2|viridis"
  const request = ++state.mapRequest;
  const source = state.source;
  const current = () => request === state.mapRequest && source === state.source;
  const overlay = $("overlay");
  overlay.dataset.loading = key;
  if (waiting) setStatus(waiting);
  try {
    const resp = await fetchOK(url);
    if (waiting && $("status").textContent === waiting) setStatus("");
    const blob = await resp.blob();
    if (!current()) return;
    const objectURL = URL.createObjectURL(blob);
    await new Promise((resolve) => {
      overlay.onload = overlay.onerror = resolve;
      overlay.src = objectURL;
    });
    if (state.mapURL) URL.revokeObjectURL(state.mapURL);
    state.mapURL = objectURL;
    if (!current()) return;
    overlay.dataset.map = key; // the browser test waits for this
    $("stage").classList.remove("empty");
    $("map-min").textContent = fmt(resp.headers.get("X-Map-Min"));
    $("map-max").textContent = fmt(resp.headers.get("X-Map-Max"));
    // Signed maps are drawn over a range symmetric about zero: zero is the scale's centre.
    $("map-zero").hidden = resp.headers.get("X-Map-Signed") !== "true";
    $("map-title").textContent = title;
    $("map-help").textContent = help;
    if (k && k.relevance && state.latent === null) showRelevance(k.name, state.cls, current);
  } catch (err) {
    if (current()) setStatus(`map: ${err.message}`);
  }
  if (!k || !k.relevance) $("relevance").hidden = true;
}

// showRelevance lists a relevance kind's most relevant latents for a class (GET /api/relevance,
// computed with its map) and where the logit's relevance went; a latent's entry selects it.
async function showRelevance(kind, cls, current) {
  let r;
  try {
    r = await getJSON(api("relevance", { kind, class: cls }));
  } catch (err) {
    if (current()) setStatus(`relevance: ${err.message}`);
    return;
  }
  if (!current()) return;
  const order = [...r.latents.keys()].sort((x, y) => r.latents[y] - r.latents[x]).slice(0, 8);
  const big = Math.max(...r.latents.map(Math.abs)) || 1;
  const list = $("relevance-top");
  list.textContent = "";
  for (const l of order) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.latent = l;
    b.textContent = `latent ${l}`;
    b.addEventListener("click", () => { state.latent = l; refresh(); });
    const bar = document.createElement("span");
    bar.className = r.latents[l] < 0 ? "bar neg" : "bar";
    bar.style.width = `${(60 * Math.abs(r.latents[l]) / big).toFixed(1)}px`;
    li.append(b, document.createTextNode(` R ${fmt(r.latents[l])}`), bar);
    list.append(li);
  }
  const c = r.conservation;
  $("relevance-kind").textContent = `${kind}, class ${cls}`;
  $("relevance-budget").textContent = `logit ${fmt(c.logit)} = pixels ${fmt(c.pixels)} + positions ${fmt(c.positions)}` +
    ` + initial latents ${fmt(c.latents)} + decoder query ${fmt(c.query)} + absorbed ${fmt(c.absorbed)}`;
  $("relevance").hidden = false;
  $("relevance").dataset.shown = `${kind}:c${cls}`; // the browser test waits for this
}

function fmt(v) {
  const x = parseFloat(v);
  if (!isFinite(x)) return "";
  return Math.abs(x) >= 1e-3 || x === 0 ? x.toPrecision(3) : x.toExponential(2);
}

// ---- sparse autoencoder features ---------------------------------------------------------------

async function loadSAE() {
  $("sae").hidden = false;
  const f = await getJSON("/api/sae");
  state.sae = f;
  $("sae-source").textContent = `${f.data} · M = ${f.dict}, k = ${f.k} · FVU ${f.fvu.toFixed(4)} · ${f.dead} never fire` +
    (f.random_weights ? " · random weights" : "");
  $("sae-help").textContent = f.heatmaps ? `Colour: ${f.heatmaps}.` : "The entry's top-activating images.";
  const ol = $("sae-dict");
  ol.textContent = "";
  const top = f.features.length ? f.features[0].frequency : 1;
  for (const e of f.features.slice(0, 300)) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "sae-entry";
    b.dataset.index = e.index;
    const bar = document.createElement("span");
    bar.className = "freq";
    bar.style.width = `${Math.max(1, 60 * e.frequency / (top || 1))}px`;
    b.append(bar, document.createTextNode(`#${e.index} · ${pct(e.frequency)} · mean ${e.mean_activation.toPrecision(3)}`));
    b.addEventListener("click", () => showSAEEntry(e.index));
    li.append(b);
    ol.append(li);
  }
  if (f.features.length) showSAEEntry(f.features[0].index);
}

function showSAEEntry(index) {
  const e = state.sae.features.find((x) => x.index === index);
  if (!e) return;
  state.saeEntry = index;
  for (const b of document.querySelectorAll(".sae-entry")) b.classList.toggle("selected", +b.dataset.index === index);
  const img = $("sae-montage");
  let title = `entry ${index}: fires on ${pct(e.frequency)} of samples, mean ${e.mean_activation.toPrecision(3)}`;
  if (e.montage) {
    img.hidden = false;
    img.dataset.index = index;
    img.src = `/api/sae/png?name=${encodeURIComponent(e.montage)}`;
  } else {
    img.hidden = true;
    title += e.frequency > 0 ? " (no montage drawn: probe sae features --montages 0 draws all)" : " (never fires)";
  }
  $("sae-title").textContent = title;
}

async function loadActive(source) {
  const ol = $("sae-active");
  ol.textContent = "";
  $("sae-active-info").textContent = "…";
  try {
    const r = await getJSON(api("sae/active"));
    if (state.source !== source) return;
    $("sae-active-info").textContent = r.total > r.features.length ? `${r.total}, the largest ${r.features.length}` : `${r.total}`;
    for (const a of r.features) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "sae-act";
      b.dataset.index = a.index;
      b.dataset.latent = a.latent;
      b.textContent = `#${a.index}` + (a.latent >= 0 ? ` at latent ${a.latent}` : "") + ` = ${a.value.toPrecision(3)}`;
      b.title = a.latent >= 0 ? "show the entry, and this latent's cross-attention on the image" : "show the entry";
      b.addEventListener("click", () => {
        showSAEEntry(a.index);
        if (a.latent >= 0) {
          state.latent = a.latent;
          refresh();
        }
      });
      li.append(b);
      ol.append(li);
    }
  } catch (err) {
    if (state.source === source) $("sae-active-info").textContent = err.message;
  }
}

// ---- stored features --------------------------------------------------------------------------

const palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
function classColour(i) {
  return i < palette.length ? palette[i] : `hsl(${(i * 137.5) % 360}, 55%, 50%)`;
}

async function loadFeatures() {
  $("features").hidden = false;
  const rep = await getJSON("/api/features");
  $("features-source").textContent = `${rep.source} · ${rep.rows} rows · ${rep.classes.length} classes`;
  const sel = $("pca-column");
  if (!sel.options.length) {
    for (const c of rep.columns) sel.append(new Option(`${c.name} (${c.dim})`, c.name));
    const preferred = rep.columns.find((c) => c.name === "decoder") || rep.columns[rep.columns.length - 1];
    if (preferred) sel.value = preferred.name;
    sel.addEventListener("change", loadScatter);
    loadScatter();
  }
  showProbe(rep);
  if (rep.status === "running") setTimeout(loadFeatures, 1000);
}

function showProbe(rep) {
  const body = $("probe-table").tBodies[0];
  body.textContent = "";
  const done = new Map(rep.results.map((r) => [r.column, r]));
  for (const c of rep.columns) {
    const r = done.get(c.name);
    const tr = document.createElement("tr");
    if (rep.best === c.name) tr.className = "best";
    const cells = [c.name, c.dim];
    if (r) cells.push(null, pct(r.test.top5), r.knn ? pct(r.knn.top1) : "–", r.test.macro_f1.toFixed(3), r.best_C);
    else cells.push("…", "", "", "", "");
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      if (i === 2 && r) {
        td.className = "acc";
        const bar = document.createElement("div");
        bar.style.width = `calc(${(100 * r.test.top1).toFixed(1)}% - 12px)`;
        const s = document.createElement("span");
        s.textContent = pct(r.test.top1);
        td.append(bar, s);
      } else td.textContent = v;
      tr.append(td);
    });
    body.append(tr);
  }
  const st = { running: `running: ${rep.progress} of ${rep.columns.length} columns`, done: `done in ${rep.seconds.toFixed(1)} s; best: ${rep.best}`, error: `error: ${rep.error}` };
  $("probe-status").textContent = st[rep.status] || "";
}

async function loadScatter() {
  const column = $("pca-column").value;
  $("pca-info").textContent = "computing…";
  try {
    const p = await getJSON(`/api/features/pca?column=${encodeURIComponent(column)}`);
    if ($("pca-column").value !== column) return;
    drawScatter(p);
    $("pca-info").textContent = `${p.points.length} of ${p.rows} rows · PC1 ${pct(p.explained[0])}, PC2 ${pct(p.explained[1])} of the variance`;
  } catch (err) {
    $("pca-info").textContent = err.message;
  }
}

function drawScatter(p) {
  const canvas = $("scatter");
  const dpr = window.devicePixelRatio || 1;
  const W = 520, H = 360, pad = 18;
  canvas.width = W * dpr;
  canvas.height = H * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, W, H);
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of p.points) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const sx = (W - 2 * pad) / ((x1 - x0) || 1), sy = (H - 2 * pad) / ((y1 - y0) || 1);
  ctx.strokeStyle = "#e6e8ef";
  ctx.beginPath();
  ctx.moveTo(pad + (0 - x0) * sx, pad); ctx.lineTo(pad + (0 - x0) * sx, H - pad);
  ctx.moveTo(pad, H - pad - (0 - y0) * sy); ctx.lineTo(W - pad, H - pad - (0 - y0) * sy);
  ctx.stroke();
  ctx.globalAlpha = 0.75;
  for (const [x, y, c] of p.points) {
    ctx.fillStyle = classColour(c);
    ctx.beginPath();
    ctx.arc(pad + (x - x0) * sx, H - pad - (y - y0) * sy, 2.6, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#6b7385";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText("PC1 →", W - pad - 34, H - 5);
  ctx.fillText("PC2 ↑", 4, 12);
  const legend = $("legend");
  legend.textContent = "";
  p.classes.forEach((name, i) => {
    const s = document.createElement("span");
    const dot = document.createElement("i");
    dot.style.background = classColour(i);
    s.append(dot, document.createTextNode(name));
    legend.append(s);
  });
}

start().catch((err) => setStatus(`could not start: ${err.message}`));
