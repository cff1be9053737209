// phototagger's pages: upload a photo for prediction, and send corrections to the JSON API.
"use strict";

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function percent(p) {
  return (p * 100).toFixed(1) + "%";
}

function renderGuess(template, landmark) {
  const item = template.content.firstElementChild.cloneNode(true);
  item.querySelector(".guess-name").textContent = landmark.name;
  item.querySelector(".guess-p").textContent = percent(landmark.probability);
  const meter = item.querySelector("meter");
  meter.value = landmark.probability;
  meter.textContent = percent(landmark.probability);
  const place = item.querySelector(".guess-place");
  place.textContent = [landmark.city, landmark.country].filter(Boolean).join(", ") || "place unknown";
  if (landmark.map_url) {
    place.append(` · ${landmark.latitude.toFixed(4)}, ${landmark.longitude.toFixed(4)} · `);
    const link = document.createElement("a");
    link.href = landmark.map_url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = "OpenStreetMap";
    place.append(link);
  }
  return item;
}

function setUpPredict(form) {
  const input = form.querySelector("input[type=file]");
  const status = document.getElementById("predict-status");
  const error = document.getElementById("predict-error");
  const result = document.getElementById("result");
  const limit = Number(form.dataset.limit);

  async function predict(file) {
    show(error, "");
    if (limit && file.size > limit) {
      show(error, `${file.name} is too large: the limit is ${Math.round(limit / 1048576)} MB.`);
      return;
    }
    show(status, `Looking at ${file.name}…`);
    const body = new FormData();
    body.append("photo", file);
    let answer;
    try {
      const response = await fetch(form.dataset.api, { method: "POST", body });
      answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
      if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
    } catch (problem) {
      show(status, "");
      result.hidden = true;
      show(error, problem.message);
      return;
    }
    show(status, "");
    document.getElementById("preview").src = answer.preview;
    document.getElementById("preview-name").textContent = answer.source;
    const verdict = document.getElementById("verdict");
    verdict.classList.toggle("unsure", !answer.confident);
    verdict.textContent = answer.explanation;
    const list = document.getElementById("guesses");
    const template = document.getElementById("guess-template");
    list.replaceChildren(...answer.landmarks.map((landmark) => renderGuess(template, landmark)));
    result.hidden = false;
  }

  input.addEventListener("change", () => { if (input.files[0]) predict(input.files[0]); });
  form.addEventListener("submit", (event) => event.preventDefault());
  for (const name of ["dragenter", "dragover"]) {
    form.addEventListener(name, (event) => { event.preventDefault(); form.classList.add("over"); });
  }
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) predict(file);
  });
}

// A name the index does not know: the form's place fields (hidden and left out of what is sent
// until now) ask where the new landmark stands, as `tag --landmark NEW --city ...` takes it.
function askForPlace(form) {
  const fields = form.querySelector("fieldset.new-place");
  if (!fields || !fields.hidden) return;
  fields.hidden = false;
  fields.disabled = false;
  fields.querySelector("input").focus();
}

// What a form's action did stays on the page (naming a place: what was learned), with a link
// to its photos; the form is spent.
function done(form, message, answer) {
  if (answer.url) {
    const link = document.createElement("a");
    link.href = answer.url;
    link.textContent = "See its photos";
    message.append(document.createElement("br"), link);
  }
  for (const field of form.elements) field.disabled = true;
  form.hidden = true;
}

function setUpAction(form) {
  const message = form.parentElement.querySelector("[data-message]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const body = Object.fromEntries(new FormData(form));
    for (const button of form.querySelectorAll("button")) button.disabled = true;
    try {
      const response = await fetch(form.dataset.api, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      message.classList.toggle("error", !response.ok);
      show(message, answer.message || answer.error || `the server answered ${response.status}`);
      if (answer.unknown_landmark) askForPlace(form);
      if (response.ok && form.dataset.then === "show") {
        done(form, message, answer);
        return;
      }
      if (response.ok) setTimeout(() => window.location.reload(), 900);
    } catch (problem) {
      message.classList.add("error");
      show(message, problem.message);
    } finally {
      for (const button of form.querySelectorAll("button")) button.disabled = false;
    }
  });
}

function setUpReview(form) {
  const message = document.getElementById("review-message");
  const selectAll = document.getElementById("select-all");
  const count = document.getElementById("review-count");
  const boxes = () => [...form.querySelectorAll("input[name=photo]")];

  function refresh() {
    const every = boxes();
    const picked = every.filter((box) => box.checked).length;
    selectAll.checked = every.length > 0 && picked === every.length;
    selectAll.indeterminate = picked > 0 && picked < every.length;
    for (const button of form.querySelectorAll(".review-bar button")) button.disabled = !picked;
    count.textContent = `${every.length} suggestion${every.length === 1 ? "" : "s"}` +
      (picked ? `, ${picked} selected` : "");
    if (!every.length) {
      form.hidden = true;
      document.getElementById("review-empty").hidden = false;
    }
  }

  async function review(action, ids) {
    const buttons = form.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    try {
      const response = await fetch(form.dataset.api, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ [action]: ids }),
      });
      const answer = await response.json().catch(() => ({}));
      for (const result of answer.results || []) {
        if (result.ok) document.getElementById(`suggestion-${result.id}`)?.remove();
      }
      message.classList.toggle("error", !response.ok);
      show(message, answer.message || answer.error || `the server answered ${response.status}`);
    } catch (problem) {
      message.classList.add("error");
      show(message, problem.message);
    } finally {
      for (const button of buttons) button.disabled = false;
      refresh();
    }
  }

  selectAll.addEventListener("change", () => {
    for (const box of boxes()) box.checked = selectAll.checked;
    refresh();
  });
  form.addEventListener("change", (event) => { if (event.target !== selectAll) refresh(); });
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const ids = button.dataset.id ? [Number(button.dataset.id)]
      : boxes().filter((box) => box.checked).map((box) => Number(box.value));
    if (ids.length) review(button.dataset.action, ids);
  });
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const predictForm = document.getElementById("predict-form");
  if (predictForm) setUpPredict(predictForm);
  for (const form of document.querySelectorAll("form.action[data-api]")) setUpAction(form);
  const reviewForm = document.getElementById("review-form");
  if (reviewForm) setUpReview(reviewForm);
});
