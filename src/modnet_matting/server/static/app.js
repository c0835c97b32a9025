// The web page: send the photo to POST v1/matte?output=json and show what comes back.
// The matte is computed once per photo: colour and image backgrounds are composited here, from
// the server's cut-out (its colours are already decontaminated); only "blurred photo" asks the
// server again. Plain JavaScript, no build step and nothing fetched from other sites.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, controller: null, urls: [], result: null, compositeUrl: null };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function chosenBackground() {
  return document.querySelector('input[name="bg"]:checked').value;
}

// Query string and form for the current photo: the server composites only the blurred background.
function buildRequest() {
  const params = new URLSearchParams({ output: "json" });
  if (chosenBackground() === "blur") params.set("blur", "true");
  const form = new FormData();
  form.append("file", state.photo, state.photo.name || "photo");
  return { url: "v1/matte?" + params.toString(), form };
}

function requestHeaders() {
  const key = $("api-key").value;
  return key ? { "X-API-Key": key } : {};
}

function pngBlobUrl(base64) {
  const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
  state.urls.push(url);
  return url;
}

function baseName() {
  const name = (state.photo && state.photo.name) || "photo";
  return name.replace(/\.[^.]+$/, "") || "photo";
}

function clearResults() {
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.urls = [];
  state.result = null;
  $("results").hidden = true;
  $("composite-figure").hidden = true;
}

function place(imgId, linkId, url, suffix) {
  $(imgId).src = url;
  $(linkId).href = url;
  $(linkId).download = `${baseName()}-${suffix}.png`;
}

function show(result) {
  clearResults();
  state.result = { ...result, cutoutUrl: pngBlobUrl(result.cutout) };
  place("matte", "download-matte", pngBlobUrl(result.alpha), "matte");
  place("cutout", "download-cutout", state.result.cutoutUrl, "cutout");
  $("results").hidden = false;
  $("composite-figure").hidden = !result.composite;
  if (result.composite) place("composite", "download-composite", pngBlobUrl(result.composite), "background");
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the background image cannot be read"));
    image.src = url;
  });
}

// The person over a colour or an image (scaled to cover, centred), drawn from the cut-out.
async function composeHere(kind) {
  const { width, height, cutoutUrl } = state.result;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  if (kind === "color") {
    context.fillStyle = $("bg-color").value;
    context.fillRect(0, 0, width, height);
  } else {
    const url = URL.createObjectURL($("bg-image").files[0]);
    try {
      const backdrop = await loadImage(url);
      const scale = Math.max(width / backdrop.naturalWidth, height / backdrop.naturalHeight);
      const w = backdrop.naturalWidth * scale;
      const h = backdrop.naturalHeight * scale;
      context.drawImage(backdrop, (width - w) / 2, (height - h) / 2, w, h);
    } finally {
      URL.revokeObjectURL(url);
    }
  }
  context.drawImage(await loadImage(cutoutUrl), 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  if (state.compositeUrl) URL.revokeObjectURL(state.compositeUrl);
  state.compositeUrl = URL.createObjectURL(blob);
  place("composite", "download-composite", state.compositeUrl, "background");
  $("composite-figure").hidden = false;
}

// A new background: the server only for the blurred photo, everything else from the kept matte.
async function changeBackground() {
  const kind = chosenBackground();
  if (!state.result || kind === "blur") return run();
  if (kind === "none") {
    $("composite-figure").hidden = true;
    return;
  }
  if (kind === "image" && !$("bg-image").files[0]) {
    setStatus("Choose a background image, or another background.");
    return;
  }
  try {
    await composeHere(kind);
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
    document.body.dataset.state = "error";
  }
}

async function run() {
  if (!state.photo) return;
  const request = buildRequest();
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  setStatus("Working…");
  document.body.dataset.state = "busy";
  const started = performance.now();
  try {
    const response = await fetch(request.url, {
      method: "POST", body: request.form, signal: controller.signal, headers: requestHeaders(),
    });
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    show(body);
    const kind = chosenBackground();
    if (kind === "color" || (kind === "image" && $("bg-image").files[0])) await composeHere(kind);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    setStatus(`Done: ${body.width}×${body.height} in ${seconds} s.`);
    document.body.dataset.state = "done";
  } catch (error) {
    if (error.name === "AbortError") return;
    clearResults();  // no stale matte or download next to an error
    setStatus(`Error: ${error.message}`, true);
    document.body.dataset.state = "error";
  } finally {
    if (state.controller === controller) state.controller = null;
  }
}

function takePhoto(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    if (state.controller) state.controller.abort();
    clearResults();  // the matte and downloads shown were another photo's
    state.photo = null;
    setStatus(`${file.name} is not an image.`, true);
    document.body.dataset.state = "error";
    return;
  }
  state.photo = file;
  run();
}

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

function wire() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => takePhoto(event.target.files[0]));
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    takePhoto(event.dataTransfer.files[0]);
  });
  const rerun = debounce(changeBackground, 250);
  document.querySelectorAll('input[name="bg"]').forEach((radio) => radio.addEventListener("change", rerun));
  const select = (kind) => () => { document.querySelector(`input[name="bg"][value="${kind}"]`).checked = true; rerun(); };
  $("bg-color").addEventListener("input", select("color"));
  $("bg-image").addEventListener("change", select("image"));
  fetch("healthz").then((r) => r.json()).then((health) => {
    $("key-field").hidden = !health.api_key_required;
  }).catch(() => {});
  document.body.dataset.state = "idle";
}

wire();
