// The study page: slide viewer with LN outlines, heatmaps and lesions; counts; LN list with keyboard
// navigation; edits; sign-out with the hospital's summary shown first; live updates over SSE.
import { ApiError, api } from "./api.js";
import { Editor } from "./editor.js";
import { byScore, renderCounts, renderLnList, renderMarrow } from "./panels.js";
import { currentUser, el, showError, showUser } from "./session.js";
import { SlideViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const state = {
  studyId: params.get("study"),
  slideId: params.get("slide"),
  study: null,
  view: null,
  selected: null,
  heatmaps: new Set(),
  lesions: new Set(),
  occlusion: new Set(),
  updates: 0,
};
let viewer;
let editor;
let user;

function select(lnId) {
  state.selected = lnId;
  const ln = state.view && lnId ? state.view.lns.find((n) => n.ln_id === lnId) : null;
  editor.show(ln || null, state.slideId);
  for (const item of document.querySelectorAll("#lns li")) item.classList.toggle("selected", item.dataset.lnId === lnId);
}

function renderLns() {
  renderLnList(state.view.lns, state.selected, state, {
    select: (lnId) => viewer.goTo(lnId),
    heatmap: (lnId, on) => {
      on ? state.heatmaps.add(lnId) : state.heatmaps.delete(lnId);
      viewer.toggleHeatmap(lnId, on);
    },
    lesions: (lnId, on) => {
      on ? state.lesions.add(lnId) : state.lesions.delete(lnId);
      viewer.toggleLesions(lnId, on);
    },
  });
}

function renderSlides() {
  const tabs = $("slide-tabs");
  tabs.replaceChildren();
  for (const slide of state.study.slides) {
    const tab = el("button", `slide-tab${slide.slide_id === state.slideId ? " current" : ""}`, slide.slide_id);
    tab.type = "button";
    tab.title = `${slide.specimen || "specimen unknown"} · ${slide.status}`;
    tab.addEventListener("click", () => {
      const next = new URL(window.location.href);
      next.searchParams.set("slide", slide.slide_id);
      window.location.assign(next.toString());
    });
    tabs.append(tab);
  }
}

function render() {
  const { study, view } = state;
  $("study-title").textContent = `Study ${study.study_id}`;
  renderSlides();
  renderCounts(view.counts, study);
  viewer.showLymphNodes(view.lns);
  for (const lnId of state.heatmaps) viewer.toggleHeatmap(lnId, true);
  for (const lnId of state.lesions) viewer.toggleLesions(lnId, true);
  renderLns();
  renderMarrow(
    view.marrow,
    state.occlusion,
    (index, on) => {
      on ? state.occlusion.add(index) : state.occlusion.delete(index);
      viewer.showRois(view.marrow.rois, state.occlusion);
    },
    (roi) => viewer.fit(roi.bbox),
  );
  if (view.marrow) viewer.showRois(view.marrow.rois, state.occlusion);
  select(state.selected && view.lns.some((n) => n.ln_id === state.selected) ? state.selected : null);
  const signOut = $("sign-out-report");
  signOut.hidden = !user.may_amend;
  signOut.disabled = !study.ready || Boolean(study.signed_out_by) || !study.report_version;
  document.body.dataset.outlines = String(viewer.outlineCount());
  document.body.dataset.reportVersion = String(study.report_version ?? 0);
  document.body.dataset.reportStatus = study.status;
}

async function refresh() {
  const [study, view] = await Promise.all([api.study(state.studyId), api.slideView(state.slideId)]);
  state.study = study;
  state.view = view;
  render();
}

/** Run one edit (`promise` from the API), say what happened, show a conflict, and reload. */
async function commit(action, promise) {
  const message = $("edit-message");
  message.textContent = "Saving…";
  try {
    const result = await promise;
    message.textContent = result.report_version
      ? `Saved (${action}): report version ${result.report_version}.`
      : `Saved (${action}).`;
    $("conflict").hidden = true;
  } catch (error) {
    if (error instanceof ApiError && error.code === "EDIT_CONFLICT") {
      showError($("conflict"), error);
      message.textContent = "Not saved: someone changed this first. Their version is shown now.";
    } else {
      message.textContent = `Not saved: ${error.message}${error.hint ? " " + error.hint : ""}`;
    }
  }
  await refresh().catch((error) => showError($("page-error"), error));
}

function step(direction) {
  const order = byScore(state.view.lns);
  if (!order.length) return;
  const at = order.findIndex((n) => n.ln_id === state.selected);
  const next = at < 0 ? (direction > 0 ? 0 : order.length - 1) : (at + direction + order.length) % order.length;
  viewer.goTo(order[next].ln_id);
}

function wireKeyboard() {
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "n" || event.key === "]") step(1);
    else if (event.key === "p" || event.key === "[") step(-1);
    else if (event.key === "Escape") viewer.setDrawing(null);
    else return;
    event.preventDefault();
  });
  $("next-ln").addEventListener("click", () => step(1));
  $("previous-ln").addEventListener("click", () => step(-1));
  $("draw-polygon").addEventListener("click", () => viewer.setDrawing("polygon"));
  $("draw-box").addEventListener("click", () => viewer.setDrawing("rectangle"));
}

function wireSignOut() {
  const dialog = $("sign-out-dialog");
  let preview = null;
  $("sign-out-report").addEventListener("click", async () => {
    $("sign-out-error").textContent = "";
    try {
      preview = await api.signOutPreview(state.studyId);
    } catch (error) {
      showError($("page-error"), error);
      return;
    }
    $("preview-conclusion").textContent = preview.conclusion;
    $("preview-text").textContent = preview.text;
    $("preview-version").textContent = `This issues version ${preview.final_version} as final.`;
    dialog.showModal();
  });
  $("cancel-sign-out").addEventListener("click", () => dialog.close());
  $("confirm-sign-out").addEventListener("click", async () => {
    const reason = $("sign-out-reason").value.trim() || null;
    try {
      const result = await api.signOut(state.studyId, { reason, expected_report_version: preview.report_version });
      dialog.close();
      $("edit-message").textContent = `Signed out: report version ${result.report_version} is final.`;
    } catch (error) {
      showError($("sign-out-error"), error);
      return;
    }
    await refresh();
  });
}

function goLive() {
  const status = $("live-status");
  const source = new EventSource(api.eventsUrl(state.studyId), { withCredentials: true });
  let last = null;
  source.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "live on";
  });
  source.addEventListener("error", () => {
    status.textContent = "reconnecting…";
    status.className = "live off";
  });
  source.addEventListener("study", async (event) => {
    const pulse = event.data;
    if (last !== null && pulse !== last) {
      await refresh().catch((error) => showError($("page-error"), error));
      state.updates += 1;
      document.body.dataset.liveUpdates = String(state.updates);
    }
    last = pulse;
  });
}

async function main() {
  user = await currentUser();
  if (!user) {
    window.location.assign("./");
    return;
  }
  showUser(user);
  if (!state.studyId) {
    showError($("page-error"), new Error("No study was named: open one from the worklist."));
    return;
  }
  try {
    state.study = await api.study(state.studyId);
  } catch (error) {
    showError($("page-error"), error);
    return;
  }
  if (!state.slideId || !state.study.slides.some((s) => s.slide_id === state.slideId)) {
    state.slideId = state.study.slides.length ? state.study.slides[0].slide_id : null;
  }
  if (!state.slideId) {
    showError($("page-error"), new Error("This study has no slides yet."));
    return;
  }
  viewer = new SlideViewer($("viewer"), user.may_amend, {
    select: (lnId) => select(lnId),
    moved: (lnId, annotation) => editor.moved(lnId, annotation),
    drawn: (annotation) => editor.drawn(annotation),
  });
  editor = new Editor(user, commit, viewer);
  state.view = await api.slideView(state.slideId);
  if (state.view.dzi_url) {
    await viewer.open(state.view.dzi_url, state.view.mpp_x, $("scalebar-bar"), $("scalebar-label"));
  } else {
    showError($("page-error"), new Error("The slide file of this slide is not recorded, so it cannot be shown."));
  }
  render();
  wireKeyboard();
  wireSignOut();
  goLive();
  document.body.dataset.ready = "true";
}

main().catch((error) => showError($("page-error"), error));
