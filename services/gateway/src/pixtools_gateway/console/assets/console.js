// PixTools console: submits a pipeline, follows its progress over server-sent events and shows the results.
// Everything the API returns is written with textContent or attributes, never parsed as HTML.

const KEY_STORAGE = "pixtools-api-key";
const TERMINAL = new Set(["succeeded", "partially_failed", "failed", "cancelled"]);
// Presets name operations; one is offered only when the catalog has every operation it needs.
const PRESETS = [
  {
    name: "Thumbnail + WebP",
    pipeline: [
      { op: "resize", params: { width: 256 } },
      { op: "convert", params: { format: "webp" } },
    ],
  },
  { name: "Denoise", pipeline: [{ op: "denoise" }, { op: "convert", params: { format: "png" } }] },
  { name: "Detect with overlay", pipeline: [{ op: "detect", params: { overlay: true } }] },
  { name: "Metadata", pipeline: [{ op: "metadata" }] },
];

const $ = (id) => document.getElementById(id);
let catalog = [];
let chosenFile = null;
let originalUrl = null;
let following = 0; // which job's stream is current; older streams stop updating the page

class ApiError extends Error {}

function apiKey() {
  return $("api-key").value.trim();
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${apiKey()}`, ...extra };
}

async function api(path, options = {}) {
  if (!apiKey()) throw new ApiError("Enter an API key first.");
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
      if (Array.isArray(problem.errors)) {
        detail += ": " + problem.errors.map((error) => `${error.loc.join(".")} ${error.msg}`).join("; ");
      }
    } catch {
      // Not a problem document: keep the status line.
    }
    throw new ApiError(detail);
  }
  return response;
}

function say(text) {
  $("message").textContent = text;
}

function element(tag, text, attributes = {}) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  return made;
}

function row(cells, stateColumn = -1) {
  const tr = document.createElement("tr");
  cells.forEach((cell, index) => {
    const td = cell instanceof Node ? document.createElement("td") : element("td", cell);
    if (cell instanceof Node) td.append(cell);
    if (index === stateColumn) td.className = `state-${cell}`;
    tr.append(td);
  });
  return tr;
}

// --- the operation catalog, presets and the pipeline editor ---

function defaultParams(schema) {
  const params = {};
  for (const [name, property] of Object.entries(schema.properties || {})) {
    if ("default" in property) params[name] = property.default;
    else if (Array.isArray(property.enum)) params[name] = property.enum[0];
  }
  return params;
}

async function loadCatalog() {
  const body = await (await api("/v1/operations")).json();
  catalog = body.operations;
  const operations = $("operation");
  operations.replaceChildren(...catalog.map((operation) => element("option", operation.op, { value: operation.op })));
  showOperationHelp();
  const known = new Set(catalog.map((operation) => operation.op));
  const offered = PRESETS.filter((preset) => preset.pipeline.every((step) => known.has(step.op)));
  $("preset").replaceChildren(
    element("option", "(custom)", { value: "" }),
    ...offered.map((preset) => element("option", preset.name, { value: preset.name })),
  );
  if (!$("pipeline").value.trim() && offered.length) {
    $("preset").value = offered[0].name;
    applyPreset();
  }
}

function showOperationHelp() {
  const chosen = catalog.find((operation) => operation.op === $("operation").value);
  $("operation-help").textContent = chosen ? `${chosen.op} (${chosen.service}): ${chosen.description}` : "";
}

function applyPreset() {
  const preset = PRESETS.find((candidate) => candidate.name === $("preset").value);
  if (preset) $("pipeline").value = JSON.stringify(preset.pipeline, null, 2);
}

function addStep() {
  const chosen = catalog.find((operation) => operation.op === $("operation").value);
  if (!chosen) return;
  let pipeline = [];
  try {
    pipeline = $("pipeline").value.trim() ? JSON.parse($("pipeline").value) : [];
  } catch {
    say("The pipeline is not valid JSON; fix it before adding a step.");
    return;
  }
  const params = defaultParams(chosen.params_schema);
  pipeline.push(Object.keys(params).length ? { op: chosen.op, params } : { op: chosen.op });
  $("pipeline").value = JSON.stringify(pipeline, null, 2);
  $("preset").value = "";
}

// --- choosing an image ---

function chooseFile(file) {
  chosenFile = file || null;
  $("chosen-file").textContent = chosenFile ? `${chosenFile.name}, ${chosenFile.size} bytes` : "";
}

function wireDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const [file] = event.dataTransfer.files;
    if (file) chooseFile(file);
  });
  $("image").addEventListener("change", () => chooseFile($("image").files[0]));
}

// --- running a job and following it ---

async function run(event) {
  event.preventDefault();
  say("");
  if (!chosenFile) return say("Choose an image first.");
  let pipeline;
  try {
    pipeline = JSON.parse($("pipeline").value);
  } catch {
    return say("The pipeline is not valid JSON.");
  }
  const form = new FormData();
  form.append("file", chosenFile, chosenFile.name);
  form.append("pipeline", JSON.stringify(pipeline));
  $("run").disabled = true;
  try {
    const accepted = await (await api("/v1/jobs", { method: "POST", body: form })).json();
    if (originalUrl) URL.revokeObjectURL(originalUrl);
    originalUrl = URL.createObjectURL(chosenFile);
    await follow(accepted.job_id, originalUrl);
  } catch (error) {
    say(error instanceof ApiError ? error.message : `The request failed: ${error}`);
  } finally {
    $("run").disabled = false;
  }
}

function showJob(jobId, state) {
  $("job").hidden = false;
  $("job-id").textContent = jobId;
  $("job-state").textContent = state;
}

function showStep(step) {
  const body = $("steps").tBodies[0];
  const cells = [step.id, step.op, step.state, step.error ? `${step.error.code}: ${step.error.message}` : ""];
  const fresh = row(cells, 2);
  fresh.dataset.step = step.id;
  const existing = [...body.rows].find((tr) => tr.dataset.step === step.id);
  if (existing) existing.replaceWith(fresh);
  else body.append(fresh);
}

async function follow(jobId, original) {
  const mine = ++following;
  showJob(jobId, "accepted");
  $("steps").tBodies[0].replaceChildren();
  $("results").replaceChildren();
  let lastEventId = null;
  for (let attempt = 0; attempt < 5 && mine === following; attempt += 1) {
    let state = null;
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers });
      for await (const message of serverSentEvents(response)) {
        if (mine !== following) return;
        if (message.id) lastEventId = message.id;
        const data = JSON.parse(message.data);
        if (message.event === "step") showStep(data);
        if (message.event === "job") {
          state = data.state;
          $("job-state").textContent = state;
        }
      }
    } catch (error) {
      if (error instanceof ApiError) return say(error.message);
    }
    if (state && TERMINAL.has(state)) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  if (mine !== following) return;
  await showResults(jobId, original);
  await loadJobs();
}

// The frames of a text/event-stream body, read with fetch so that the key travels in a header.
async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = { event: "message", data: "", id: null };
      const data = [];
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") message.event = text;
        else if (field === "data") data.push(text);
        else if (field === "id") message.id = text;
      }
      if (data.length) {
        message.data = data.join("\n");
        yield message;
      }
    }
  }
}

// --- results ---

async function showResults(jobId, original) {
  const job = await (await api(`/v1/jobs/${encodeURIComponent(jobId)}`)).json();
  showJob(job.job_id, job.state);
  job.steps.forEach(showStep);
  const results = $("results");
  results.replaceChildren();
  if (job.error) results.append(element("p", `${job.error.code}: ${job.error.message}`));
  const denoised = job.steps.find((step) => step.op === "denoise" && step.state === "succeeded");
  if (denoised && original) {
    const after = finalImageAfter(job, denoised.id);
    if (after) results.append(comparison(original, after.url));
  }
  for (const step of job.steps.filter((candidate) => candidate.op === "detect" && candidate.result)) {
    results.append(detections(step, job, original));
  }
  const images = job.outputs.filter((output) => output.content_type.startsWith("image/"));
  if (images.length) {
    const gallery = element("div", null, { class: "outputs" });
    gallery.append(...images.map(outputFigure));
    results.append(section("Outputs", gallery));
  }
  if (job.outputs.length) results.append(downloads(job.outputs));
  for (const [stepId, metadata] of Object.entries(job.metadata || {})) {
    results.append(metadataTable(stepId, metadata));
  }
}

function section(title, ...content) {
  const part = element("section");
  part.append(element("h3", title), ...content);
  return part;
}

function outputFigure(output) {
  const figure = element("figure");
  const size = output.width ? ` ${output.width}×${output.height}` : "";
  figure.append(
    element("img", null, { src: output.url, alt: `Output ${output.name} of step ${output.step} (${output.op})` }),
    element("figcaption", `${output.step} ${output.op} ${output.name}: ${output.content_type}${size}`),
  );
  return figure;
}

function downloads(outputs) {
  const list = element("ul");
  for (const output of outputs) {
    const item = element("li");
    const label = `Download ${output.step} ${output.name}`;
    item.append(element("a", label, { href: output.url, download: `${output.step}-${output.name}` }));
    item.append(` (${output.content_type}, ${output.bytes} bytes)`);
    list.append(item);
  }
  return section("Downloads", list);
}

// The image the pipeline ends with after a step: the last image output of that step or of the steps after it.
function finalImageAfter(job, stepId) {
  const order = job.steps.map((step) => step.id);
  const from = order.indexOf(stepId);
  const images = job.outputs.filter((output) => output.content_type.startsWith("image/"));
  const later = images.filter((output) => order.indexOf(output.step) >= from);
  return later[later.length - 1] || null;
}

function comparison(beforeUrl, afterUrl) {
  const frame = element("div", null, { class: "compare" });
  const after = element("img", null, { src: afterUrl, alt: "After denoising" });
  const before = element("img", null, { src: beforeUrl, alt: "Before denoising", class: "before" });
  frame.append(after, before);
  const slider = element("input", null, { type: "range", min: "0", max: "100", value: "50", id: "compare-split" });
  const label = element("label", "Before/after split", { for: "compare-split" });
  const split = () => {
    before.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
  };
  slider.addEventListener("input", split);
  split();
  return section("Before and after denoising", frame, element("br"), label, slider);
}

function detections(step, job, original) {
  const part = section(`Detections of step ${step.id}`);
  const counts = step.result.counts || {};
  const table = element("table", null, { class: "counts" });
  table.append(element("caption", "Objects per class"));
  const head = element("thead");
  head.append(row(["Class", "Count"]));
  const body = element("tbody");
  for (const [name, count] of Object.entries(counts).sort((a, b) => b[1] - a[1])) body.append(row([name, count]));
  table.append(head, body);
  part.append(table);
  const overlay = job.outputs.find((output) => output.step === step.id && output.name === "overlay");
  if (overlay) part.append(outputFigure(overlay));
  if (original && job.input && job.input.width) part.append(boxes(original, step.result.detections || [], job.input));
  return part;
}

function boxes(imageUrl, found, input) {
  const svgNs = "http://www.w3.org/2000/svg";
  const frame = element("figure", null, { class: "boxes" });
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${input.width} ${input.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${found.length} detected boxes`);
  for (const detection of found) {
    const [x1, y1, x2, y2] = detection.xyxy;
    const rect = document.createElementNS(svgNs, "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1 }).forEach(([name, value]) =>
      rect.setAttribute(name, String(value)),
    );
    const title = document.createElementNS(svgNs, "title");
    title.textContent = `${detection.class_name} ${detection.score.toFixed(2)}`;
    rect.append(title);
    const text = document.createElementNS(svgNs, "text");
    text.setAttribute("x", String(x1 + 2));
    text.setAttribute("y", String(Math.max(y1 - 4, 14)));
    text.textContent = detection.class_name;
    svg.append(rect, text);
  }
  frame.append(element("img", null, { src: imageUrl, alt: "The detect step's input" }), svg);
  frame.append(element("figcaption", "Boxes drawn from the detections"));
  return frame;
}

function metadataTable(stepId, metadata) {
  const table = element("table", null, { class: "metadata" });
  table.append(element("caption", `Metadata of step ${stepId}`));
  const body = element("tbody");
  for (const [name, value] of Object.entries(metadata)) {
    body.append(row([name, typeof value === "object" ? JSON.stringify(value) : value]));
  }
  table.append(body);
  return table;
}

// --- the jobs list and the batch view ---

async function loadJobs() {
  const page = await (await api("/v1/jobs?limit=20")).json();
  const body = $("jobs").tBodies[0];
  body.replaceChildren(
    ...page.items.map((job) => {
      const open = element("button", job.job_id, { type: "button", class: "link" });
      open.addEventListener("click", () => {
        following += 1;
        $("steps").tBodies[0].replaceChildren();
        showResults(job.job_id, null).catch((error) => say(error.message));
      });
      return row([open, job.state, job.created_at, job.finished_at || ""], 1);
    }),
  );
}

async function showBatch(event) {
  event.preventDefault();
  say("");
  const batchId = $("batch-id").value.trim();
  if (!batchId) return say("Enter a batch id.");
  try {
    const batch = await (await api(`/v1/batches/${encodeURIComponent(batchId)}?limit=1`)).json();
    showBatchProgress(batch);
    if (!TERMINAL.has(batch.state) || !batch.finished_at) {
      const response = await api(`/v1/batches/${encodeURIComponent(batchId)}/events`, {
        headers: { Accept: "text/event-stream" },
      });
      for await (const message of serverSentEvents(response)) showBatchProgress(JSON.parse(message.data));
    }
  } catch (error) {
    say(error instanceof ApiError ? error.message : `The request failed: ${error}`);
  }
}

function showBatchProgress(batch) {
  $("batch").hidden = false;
  $("batch-state").textContent = batch.state;
  $("batch-progress").max = Math.max(batch.progress.total, 1);
  $("batch-progress").value = batch.progress.finished;
  $("batch-fraction").textContent = `${batch.progress.finished} of ${batch.progress.total} jobs finished`;
  $("batch-totals").tBodies[0].replaceChildren(
    ...Object.entries(batch.totals).map(([state, count]) => row([state, count])),
  );
}

// --- start ---

async function useKey() {
  const key = apiKey();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  if (!key) return;
  say("");
  try {
    await loadCatalog();
    await loadJobs();
  } catch (error) {
    say(error instanceof ApiError ? error.message : `The request failed: ${error}`);
  }
}

function start() {
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", useKey);
  $("forget-key").addEventListener("click", () => {
    $("api-key").value = "";
    useKey();
  });
  $("preset").addEventListener("change", applyPreset);
  $("operation").addEventListener("change", showOperationHelp);
  $("add-step").addEventListener("click", addStep);
  $("run-form").addEventListener("submit", run);
  $("refresh-jobs").addEventListener("click", () => loadJobs().catch((error) => say(error.message)));
  $("batch-form").addEventListener("submit", showBatch);
  wireDropZone();
  if (apiKey()) useKey();
}

start();
