"use strict";
// MODNet in the browser with onnxruntime-web: a photo or the camera in, alpha / cut-out /
// new background out, all on this page. The preprocessing follows modnet.json, written by
// `modnet export --format web` from the weights' config, so the network sees what it sees
// in Python (size rule, multiple of 32, mean/std); resizing is the canvas's own.

const $ = (id) => document.getElementById(id);
const OFD_THRESHOLD = 0.1; // the authors' one-frame-delay threshold, as in modnet_matting.video.ofd

const state = {
  session: null, config: null, provider: "",
  source: null, mask: null, // the last input (image or video frame canvas) and its full-size alpha mask canvas
  background: null, live: null, history: [], frames: [],
};
// What the tests read: the last alpha at full size (Uint8ClampedArray, 0-255) and camera statistics.
window.modnet = { ready: false, busy: false, alpha: null, width: 0, height: 0, frames: 0, fps: 0, error: null };

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  if (isError) window.modnet.error = text;
}

function networkSize(height, width, pre, maxPixels) {
  // modnet_matting.inference.preprocess.network_size, line for line
  const ref = pre.reference_size, div = pre.size_divisor;
  let h = height, w = width;
  if (pre.resize_mode === "short_side" || Math.max(h, w) < ref || Math.min(h, w) > ref) {
    if (width >= height) { h = ref; w = Math.floor(width / height * ref); } else { h = Math.floor(height / width * ref); w = ref; }
  }
  if (h * w > maxPixels) { const s = Math.sqrt(maxPixels / (h * w)); h = Math.floor(h * s); w = Math.floor(w * s); }
  h = Math.max(div, h - h % div); w = Math.max(div, w - w % div);
  const longest = Math.max(div, Math.floor(Math.floor(maxPixels / Math.min(h, w)) / div) * div);
  return h > w ? [Math.min(h, longest), w] : [h, Math.min(w, longest)];
}

function canvas(width, height) {
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  return c;
}

function context(c) {
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  return ctx;
}

function inputTensor(source, netH, netW) {
  const pre = state.config.preprocess;
  const small = canvas(netW, netH);
  const ctx = context(small);
  ctx.drawImage(source, 0, 0, netW, netH);
  const px = ctx.getImageData(0, 0, netW, netH).data;
  const n = netW * netH, data = new Float32Array(3 * n);
  for (let k = 0; k < 3; k++) {
    const mean = pre.mean[k] * 255, std = pre.std[k] * 255;
    for (let i = 0; i < n; i++) data[k * n + i] = (px[4 * i + k] - mean) / std;
  }
  return new ort.Tensor("float32", data, [1, 3, netH, netW]);
}

async function predict(source, height, width) {
  const [netH, netW] = networkSize(height, width, state.config.preprocess, state.config.max_pixels);
  const feeds = { [state.config.input]: inputTensor(source, netH, netW) };
  const out = await state.session.run(feeds);
  return { alpha: out[state.config.output].data, netH, netW };
}

function maskCanvas(alpha, netH, netW, height, width) {
  // alpha at network size -> a full-size canvas whose alpha channel is the matte (bilinear, like cv2.INTER_LINEAR)
  const small = canvas(netW, netH);
  const image = new ImageData(netW, netH);
  for (let i = 0; i < alpha.length; i++) image.data[4 * i + 3] = Math.round(Math.min(1, Math.max(0, alpha[i])) * 255);
  small.getContext("2d").putImageData(image, 0, 0);
  const full = canvas(width, height);
  context(full).drawImage(small, 0, 0, width, height);
  return full;
}

function render() {
  const { source, mask } = state;
  if (!source || !mask) return;
  const out = $("result");
  out.width = mask.width; out.height = mask.height;
  const ctx = context(out);
  ctx.clearRect(0, 0, out.width, out.height);
  const view = $("view").value;
  if (view === "alpha") {
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, out.width, out.height);
    ctx.globalCompositeOperation = "source-over";
    const white = canvas(out.width, out.height), w = context(white);
    w.fillStyle = "#fff"; w.fillRect(0, 0, out.width, out.height);
    w.globalCompositeOperation = "destination-in"; w.drawImage(mask, 0, 0);
    ctx.drawImage(white, 0, 0);
    return;
  }
  const fg = canvas(out.width, out.height), f = context(fg);
  f.drawImage(source, 0, 0, out.width, out.height);
  f.globalCompositeOperation = "destination-in";
  f.drawImage(mask, 0, 0);
  if (view === "composite") {
    if (state.background) {
      const bg = state.background, scale = Math.max(out.width / bg.width, out.height / bg.height);
      const w = bg.width * scale, h = bg.height * scale;
      ctx.drawImage(bg, (out.width - w) / 2, (out.height - h) / 2, w, h);
    } else {
      ctx.fillStyle = $("colour").value; ctx.fillRect(0, 0, out.width, out.height);
    }
  }
  ctx.drawImage(fg, 0, 0);
}

function publish(mask) {
  const data = mask.getContext("2d").getImageData(0, 0, mask.width, mask.height).data;
  const alpha = new Uint8ClampedArray(mask.width * mask.height);
  for (let i = 0; i < alpha.length; i++) alpha[i] = data[4 * i + 3];
  Object.assign(window.modnet, { alpha, width: mask.width, height: mask.height });
}

async function mattePhoto(file) {
  stopCamera();
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    status(`${file.name} is not an image this browser can read`, true);
    return;
  }
  window.modnet.busy = true;
  status(`Matting ${file.name}…`);
  try {
    const start = performance.now();
    const { alpha, netH, netW } = await predict(bitmap, bitmap.height, bitmap.width);
    state.source = bitmap;
    state.mask = maskCanvas(alpha, netH, netW, bitmap.height, bitmap.width);
    render();
    publish(state.mask);
    $("download").disabled = false;
    status(`Done: ${file.name}, ${bitmap.width}x${bitmap.height}, network ${netW}x${netH}, ` +
           `${Math.round(performance.now() - start)} ms (${state.provider})`);
  } catch (err) {
    status(`Matting failed: ${err.message || err}`, true);
  } finally {
    window.modnet.busy = false;
  }
}

function ofdCorrect(prev, cur, next) {
  // modnet_matting.video.ofd.ofd_correct: a one-frame blip between agreeing neighbours is replaced by their mean
  const out = new Float32Array(cur.length);
  for (let i = 0; i < cur.length; i++) {
    const p = prev[i], c = cur[i], n = next[i];
    const flicker = Math.abs(p - n) <= OFD_THRESHOLD && Math.abs(c - p) > OFD_THRESHOLD && Math.abs(c - n) > OFD_THRESHOLD;
    out[i] = flicker ? (p + n) / 2 : c;
  }
  return out;
}

async function cameraStep() {
  const live = state.live;
  if (!live || live.stopped) return;
  const video = $("video");
  if (video.readyState >= 2 && video.videoWidth) {
    const frame = canvas(video.videoWidth, video.videoHeight);
    context(frame).drawImage(video, 0, 0);
    const { alpha, netH, netW } = await predict(frame, frame.height, frame.width);
    state.history.push({ frame, alpha, netH, netW });
    let shown = state.history[state.history.length - 1];
    if ($("ofd").checked) { // show frame t-1, corrected with its neighbours t-2 and t: one frame late
      const h = state.history;
      if (h.length >= 3 && h[0].alpha.length === h[1].alpha.length && h[1].alpha.length === h[2].alpha.length) {
        shown = { ...h[1], alpha: ofdCorrect(h[0].alpha, h[1].alpha, h[2].alpha) };
      } else {
        shown = h.length >= 2 ? h[h.length - 2] : null;
      }
    }
    while (state.history.length > 2) state.history.shift();
    if (shown) {
      state.source = shown.frame;
      state.mask = maskCanvas(shown.alpha, shown.netH, shown.netW, shown.frame.height, shown.frame.width);
      render();
      live.times.push(performance.now());
      while (live.times.length > 30) live.times.shift();
      const n = live.times.length;
      const fps = n > 1 ? (n - 1) * 1000 / (live.times[n - 1] - live.times[0]) : 0;
      window.modnet.frames += 1;
      window.modnet.fps = fps;
      $("speed").textContent = `${fps.toFixed(1)} frames/s at network ${shown.netW}x${shown.netH} (${state.provider})`;
      $("download").disabled = false;
    }
  }
  requestAnimationFrame(cameraStep);
}

async function startCamera() {
  if (state.live) { stopCamera(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    state.live = { stream, stopped: false, times: [] };
    state.history = [];
    window.modnet.frames = 0;
    $("camera").textContent = "Stop camera";
    status(`Camera on (${state.provider})`);
    requestAnimationFrame(cameraStep);
  } catch (err) {
    status(`No camera: ${err.message || err}`, true);
  }
}

function stopCamera() {
  if (!state.live) return;
  state.live.stopped = true;
  state.live.stream.getTracks().forEach((t) => t.stop());
  state.live = null;
  $("camera").textContent = "Start camera";
}

function download() {
  $("result").toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `modnet-${$("view").value}.png`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }, "image/png");
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} did not load`));
    document.head.appendChild(script);
  });
}

// The model's bytes; a server with an API key wants it in X-API-Key: give it after # in the page's
// address (/browser/#key=...), which browsers never send to a server or write into its logs.
let modelBuffer = null;
async function modelBytes() {
  if (!modelBuffer) {
    const key = new URLSearchParams(location.hash.slice(1)).get("key");
    const response = await fetch(state.config.model, { headers: key ? { "X-API-Key": key } : {} });
    if (!response.ok) {
      throw new Error(response.status === 401 ? "this server needs its API key: open the page as /browser/#key=KEY"
                                              : `${state.config.model}: HTTP ${response.status}`);
    }
    modelBuffer = new Uint8Array(await response.arrayBuffer());
  }
  return modelBuffer;
}

async function init() {
  try {
    state.config = await (await fetch("modnet.json")).json();
    // WebGPU needs onnxruntime-web's WebGPU bundle; without a GPU adapter the plain WASM bundle is
    // about 3x faster on the CPU (its WASM module is built without the WebGPU bridge).
    const gpu = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    await loadScript(gpu ? "ort/ort.webgpu.min.js" : "ort/ort.wasm.min.js");
    ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const providers = gpu ? ["webgpu", "wasm"] : ["wasm"];
    let lastError = null;
    for (const provider of providers) {
      try {
        state.session = await ort.InferenceSession.create(await modelBytes(), { executionProviders: [provider] });
        state.provider = provider === "wasm" ? `WASM, ${ort.env.wasm.numThreads} thread(s)` : "WebGPU";
        break;
      } catch (err) { lastError = err; }
    }
    if (!state.session) throw lastError;
  } catch (err) {
    status(`The model could not be loaded: ${err.message || err}`, true);
    return;
  }
  $("photo").addEventListener("change", (e) => e.target.files[0] && mattePhoto(e.target.files[0]));
  $("camera").addEventListener("click", startCamera);
  $("camera").disabled = false;
  $("download").addEventListener("click", download);
  for (const id of ["view", "colour"]) $(id).addEventListener("input", render);
  $("background").addEventListener("change", async (e) => {
    try { state.background = e.target.files[0] ? await createImageBitmap(e.target.files[0]) : null; }
    catch { status("That background is not an image this browser can read", true); state.background = null; }
    if (state.background) $("view").value = "composite";
    render();
  });
  window.modnet.ready = true;
  status(`Ready (${state.provider}). Choose a photo or start the camera.`);
}

init();
