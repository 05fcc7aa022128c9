// The study page's side panels: counts (slide and study), the LN list, and a smear's marrow call.
import { el } from "./session.js";
import { lnKind } from "./viewer.js";

/** Fill the counts table from the slide view's `counts` and the study result. */
export function renderCounts(slideCounts, study) {
  const pn = (value) => (value ? "p" + value : "—");
  const rows = [
    ["Positive", slideCounts.positive, study.positive],
    ["Negative", slideCounts.negative, study.negative],
    ["ITC", slideCounts.itc, study.itc],
    ["Examined", slideCounts.positive + slideCounts.negative + slideCounts.itc, study.examined],
    ["pN (AJCC 8th)", pn(slideCounts.pn_category), pn(study.pn_category)],
  ];
  const body = document.querySelector("#counts-table tbody");
  body.replaceChildren();
  for (const [name, slide, whole] of rows) {
    const line = el("tr");
    line.dataset.count = name.split(" ")[0].toLowerCase();
    line.append(el("th", null, name), el("td", "slide-count", slide), el("td", "study-count", whole));
    body.append(line);
  }
  const flag = document.getElementById("ajcc-flag");
  flag.hidden = !(study.below_ajcc_minimum && study.examined > 0);
  flag.textContent = `Only ${study.examined} LNs examined: AJCC asks for at least 15 for pN.`;
  document.getElementById("report-status").textContent =
    `Report ${study.report_version ? "v" + study.report_version : "not issued yet"} · ${study.status}` +
    (study.signed_out_by ? ` · signed out by ${study.signed_out_by}` : "");
}

/** LNs sorted as keyboard navigation walks them: highest score first, unscored last. */
export function byScore(lns) {
  return [...lns].sort((a, b) => (b.score ?? -1) - (a.score ?? -1) || a.index - b.index);
}

/** The LN list; `toggles` holds {heatmaps: Set, lesions: Set}; `on` = {select(lnId), heatmap(lnId, on), lesions(lnId, on)}. */
export function renderLnList(lns, selectedId, toggles, on) {
  const list = document.getElementById("lns");
  list.replaceChildren();
  for (const ln of byScore(lns)) {
    const item = el("li", `ln ln-${lnKind(ln)}${ln.ln_id === selectedId ? " selected" : ""}`);
    item.dataset.lnId = ln.ln_id;
    const name = el("button", "ln-name", `LN ${ln.index}`);
    name.type = "button";
    name.addEventListener("click", () => on.select(ln.ln_id));
    const score = el("span", "score", ln.score === null || ln.score === undefined ? "unscored" : ln.score.toFixed(2));
    const label = el("span", `label label-${lnKind(ln)}`, lnKind(ln) === "itc" ? "ITC" : ln.label || "—");
    const source = el("span", `source source-${ln.source}`, ln.source === "pathologist" ? "confirmed" : "model");
    source.title = ln.source === "pathologist" ? `reviewed by ${ln.reviewed_by || "a pathologist"}` : "model's call";
    item.append(name, score, label, source);
    if (ln.deposit_mm !== null && ln.deposit_mm !== undefined) item.append(el("span", "deposit", `${ln.deposit_mm} mm`));
    for (const [kind, set, available] of [
      ["heatmap", toggles.heatmaps, Boolean(ln.heatmap_url)],
      ["lesions", toggles.lesions, ln.lesions.length > 0],
    ]) {
      const box = el("input", `toggle-${kind}`);
      box.type = "checkbox";
      box.disabled = !available;
      box.checked = set.has(ln.ln_id);
      box.title = available ? `show the ${kind}` : `no ${kind} for this LN`;
      box.addEventListener("change", () => on[kind](ln.ln_id, box.checked));
      const wrap = el("label", "toggle", kind);
      wrap.prepend(box);
      item.append(wrap);
    }
    list.append(item);
  }
  document.getElementById("ln-count").textContent = `${lns.length} LNs`;
}

/** The smear's case call, class probabilities and ROIs (with occlusion toggles) or hide the panel. */
export function renderMarrow(marrow, occlusion, onToggle, onGo) {
  const panel = document.getElementById("marrow");
  panel.hidden = !marrow;
  if (!marrow) return;
  document.getElementById("case-call").textContent = marrow.case_call.toUpperCase();
  const probabilities = document.getElementById("case-probabilities");
  probabilities.replaceChildren();
  for (const [name, p] of Object.entries(marrow.probabilities)) {
    probabilities.append(el("li", null, `${name}: ${Number(p).toFixed(2)}`));
  }
  const list = document.getElementById("rois");
  list.replaceChildren();
  for (const roi of marrow.rois) {
    const item = el("li", "roi");
    item.dataset.roi = String(roi.index);
    const go = el("button", null, `ROI ${roi.index}`);
    go.type = "button";
    go.addEventListener("click", () => onGo(roi));
    const text = Object.entries(roi.probabilities)
      .map(([name, p]) => `${name} ${Number(p).toFixed(2)}`)
      .join(" · ");
    item.append(go, el("span", "roi-probabilities", text));
    if (roi.osm_url) {
      const box = el("input", "toggle-occlusion");
      box.type = "checkbox";
      box.checked = occlusion.has(roi.index);
      box.addEventListener("change", () => onToggle(roi.index, box.checked));
      const wrap = el("label", "toggle", "occlusion");
      wrap.prepend(box);
      item.append(wrap);
    }
    list.append(item);
  }
}
