// The rating page. Model text is only ever set through textContent: shown as text, never
// parsed as HTML. The rater's token comes from the link's fragment (#rater=TOKEN), which the
// browser does not send to the server with the page request.
"use strict";
const LABELS = ["A much better", "A better", "Equal", "B better", "B much better"];
const token = new URLSearchParams(location.hash.slice(1)).get("rater") || "";
const $ = (id) => document.getElementById(id);
const fieldsets = Array.from(document.querySelectorAll(".criterion"));
let sample = null, choices = [null, null, null], active = 0, busy = false;

for (const fs of fieldsets) {
  LABELS.forEach((label, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${i + 1} · ${label}`;
    b.dataset.value = String(i - 2);
    b.addEventListener("click", () => choose(Number(fs.dataset.index), i - 2));
    fs.appendChild(b);
  });
}

function show() {
  fieldsets.forEach((fs, c) => {
    fs.classList.toggle("active", c === active);
    for (const b of fs.querySelectorAll("button")) {
      b.classList.toggle("chosen", Number(b.dataset.value) === choices[c]);
      b.setAttribute("aria-pressed", String(Number(b.dataset.value) === choices[c]));
    }
  });
  $("submit").disabled = busy || choices.includes(null);
}

function choose(criterion, value) {
  choices[criterion] = value;
  active = Math.min(criterion + 1, 2);
  if (sample) sessionStorage.setItem("choices:" + sample.sample_id, JSON.stringify(choices));
  show();
}

function say(text) { $("message").textContent = text; }

async function api(path, options) {
  const response = await fetch(path, options);
  if (response.status === 204) return null;
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(body.error || body.result || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function progress() {
  const p = await api("/api/progress?rater=" + encodeURIComponent(token));
  $("progress").textContent = `You have rated ${p.answered}; ${p.left} left in the survey.`;
}

async function next() {
  sample = await api("/api/next?rater=" + encodeURIComponent(token));
  await progress();
  if (!sample) {
    $("task").hidden = true;
    say("Nothing is left to rate. Thank you!");
    return;
  }
  const ol = $("context");
  ol.replaceChildren();
  for (const turn of sample.context) {
    const li = document.createElement("li");
    li.textContent = turn;
    ol.appendChild(li);
  }
  $("responseA").textContent = sample.responseA;
  $("responseB").textContent = sample.responseB;
  const kept = JSON.parse(sessionStorage.getItem("choices:" + sample.sample_id) || "null");
  choices = Array.isArray(kept) && kept.length === 3 ? kept : [null, null, null];
  active = Math.max(0, choices.indexOf(null));
  $("task").hidden = false;
  say("");
  show();
}

async function submit() {
  if (busy || !sample || choices.includes(null)) return;
  busy = true;
  show();
  try {
    await api("/api/rate", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({rater: token, sample_id: sample.sample_id, ratings: choices})});
    sessionStorage.removeItem("choices:" + sample.sample_id);
    await next();
  } catch (e) {
    if (e.status === 409 || e.status === 404) {
      // The sample went to another rater (this one's time ran out): move on to a new one.
      sessionStorage.removeItem("choices:" + sample.sample_id);
      await next().catch((err) => say("Could not load a sample: " + err.message));
      say("That sample was given to someone else after a long pause; here is a new one.");
    } else {
      say("Not saved: " + e.message + ". Press Enter to try again.");
    }
  } finally {
    busy = false;
    show();
  }
}

$("form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
document.addEventListener("keydown", (e) => {
  if ($("task").hidden || e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key >= "1" && e.key <= "5") { choose(active, Number(e.key) - 3); }
  else if (e.key === "ArrowDown") { active = Math.min(active + 1, 2); show(); }
  else if (e.key === "ArrowUp" || e.key === "Backspace") { active = Math.max(active - 1, 0); show(); }
  else if (e.key === "Enter") { submit(); }
  else return;
  e.preventDefault();
});

if (!token) say("This page needs your link with its rater token (…/#rater=TOKEN).");
else next().catch((e) => say("Could not load a sample: " + e.message));
