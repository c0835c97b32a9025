// The web page: send the photo to POST v1/matte?output=json and show what comes back.
// Plain JavaScript, no build step and nothing fetched from other sites.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, controller: null, urls: [] };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function chosenBackground() {
  return document.querySelector('input[name="bg"]:checked').value;
}

// Query string and form for the current photo and background choice.
function buildRequest() {
  const params = new URLSearchParams({ output: "json" });
  const form = new FormData();
  form.append("file", state.photo, state.photo.name || "photo");
  const kind = chosenBackground();
  if (kind === "color") {
    params.set("color", $("bg-color").value);
  } else if (kind === "blur") {
    params.set("blur", "true");
  } else if (kind === "image") {
    const file = $("bg-image").files[0];
    if (!file) return null;
    form.append("background", file, file.name || "background");
  }
  return { url: "v1/matte?" + params.toString(), form };
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

function show(result) {
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.urls = [];
  const stem = baseName();
  const place = (imgId, linkId, base64, suffix) => {
    const url = pngBlobUrl(base64);
    $(imgId).src = url;
    $(linkId).href = url;
    $(linkId).download = `${stem}-${suffix}.png`;
  };
  place("matte", "download-matte", result.alpha, "matte");
  place("cutout", "download-cutout", result.cutout, "cutout");
  $("composite-figure").hidden = !result.composite;
  if (result.composite) place("composite", "download-composite", result.composite, "background");
  $("results").hidden = false;
}

async function run() {
  if (!state.photo) return;
  const request = buildRequest();
  if (!request) {
    setStatus("Choose a background image, or another background.");
    return;
  }
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  setStatus("Working…");
  document.body.dataset.state = "busy";
  const started = performance.now();
  try {
    const response = await fetch(request.url, { method: "POST", body: request.form, signal: controller.signal });
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    show(body);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    setStatus(`Done: ${body.width}×${body.height} in ${seconds} s.`);
    document.body.dataset.state = "done";
  } catch (error) {
    if (error.name === "AbortError") return;
    setStatus(`Error: ${error.message}`, true);
    document.body.dataset.state = "error";
  } finally {
    if (state.controller === controller) state.controller = null;
  }
}

function takePhoto(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    setStatus(`${file.name} is not an image.`, true);
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
  const rerun = debounce(run, 250);
  document.querySelectorAll('input[name="bg"]').forEach((radio) => radio.addEventListener("change", rerun));
  const select = (kind) => () => { document.querySelector(`input[name="bg"][value="${kind}"]`).checked = true; rerun(); };
  $("bg-color").addEventListener("input", select("color"));
  $("bg-image").addEventListener("change", select("image"));
  document.body.dataset.state = "idle";
}

wire();
