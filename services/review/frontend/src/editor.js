// The edit panel: relabel, set the largest deposit, save a moved outline, remove an LN, add a drawn
// LN. Each edit needs a reason and goes through the review API (audit trail, new report version);
// edits of an LN carry the revision the pathologist saw, so a change made by someone else first is
// refused (EDIT_CONFLICT) rather than overwritten.
import { api } from "./api.js";
import { annotationRing } from "./geometry.js";
import { lnKind } from "./viewer.js";

const $ = (id) => document.getElementById(id);

export class Editor {
  /** user: the signed-in user; commit(action, promise): runs an edit and reloads; viewer: SlideViewer. */
  constructor(user, commit, viewer) {
    this.user = user;
    this.commit = commit;
    this.viewer = viewer;
    this.ln = null;
    this.slideId = null;
    this.movedRing = null;
    this.draft = null;
    $("edit-readonly").hidden = user.may_amend;
    for (const control of document.querySelectorAll("#editor .amend, #toolbar .amend")) {
      control.disabled = !user.may_amend;
      if (!user.may_amend) control.hidden = true;
    }
    $("save-label").addEventListener("click", () => this.relabel());
    $("save-deposit").addEventListener("click", () => this.deposit());
    $("save-outline").addEventListener("click", () => this.saveOutline());
    $("remove-ln").addEventListener("click", () => this.remove());
    $("add-ln").addEventListener("click", () => this.add());
    $("cancel-new-ln").addEventListener("click", () => this.cancelDraft());
  }

  reason(field) {
    const value = $(field).value.trim();
    if (!value) {
      $("edit-message").textContent = "Give a reason: it is kept in the audit trail.";
      $(field).focus();
      return null;
    }
    return value;
  }

  /** Show LN `ln` (slide view LN or null) in the panel, for slide `slideId`. */
  show(ln, slideId) {
    const changedNode = !ln || !this.ln || ln.ln_id !== this.ln.ln_id;
    this.ln = ln;
    this.slideId = slideId;
    if (changedNode) this.movedRing = null;
    $("editor").hidden = !ln;
    if (!ln) return;
    $("edit-title").textContent = `LN ${ln.index}`;
    $("edit-facts").textContent =
      `score ${ln.score === null || ln.score === undefined ? "—" : ln.score.toFixed(3)} · ${lnKind(ln)} · ` +
      (ln.source === "pathologist" ? `confirmed by ${ln.reviewed_by || "a pathologist"}` : "model's call") +
      (ln.deposit_mm !== null && ln.deposit_mm !== undefined ? ` · deposit ${ln.deposit_mm} mm (${ln.deposit_class})` : "");
    $("edit-label").value = ln.label === "positive" ? "positive" : "negative";
    $("edit-deposit").value = ln.deposit_mm ?? "";
    $("save-outline").disabled = !this.user.may_amend || this.movedRing === null;
    if (changedNode) $("edit-reason").value = "";
  }

  /** The viewer reports LN `lnId`'s outline moved to `annotation` (not saved yet). */
  moved(lnId, annotation) {
    if (!this.ln || this.ln.ln_id !== lnId) return;
    this.movedRing = annotationRing(annotation);
    $("save-outline").disabled = !this.user.may_amend;
    $("edit-message").textContent = "Outline moved: save it with a reason, or pick another LN to discard.";
  }

  edit(action, call) {
    const reason = this.reason("edit-reason");
    if (reason === null) return;
    const ln = this.ln;
    this.commit(action, call(ln, { reason, expected_revision: ln.revision }));
  }

  relabel() {
    this.edit("relabel", (ln, body) => api.setLabel(ln.ln_id, { ...body, label: $("edit-label").value }));
  }

  deposit() {
    const text = $("edit-deposit").value.trim();
    const value = text === "" ? null : Number(text);
    if (value !== null && !(value >= 0)) {
      $("edit-message").textContent = "The deposit size is a number of millimetres (empty clears it).";
      return;
    }
    this.edit("deposit", (ln, body) => api.setDeposit(ln.ln_id, { ...body, deposit_mm: value }));
  }

  saveOutline() {
    if (this.movedRing === null) return;
    const ring = this.movedRing;
    this.edit("outline", (ln, body) => api.setContour(ln.ln_id, { ...body, contour: ring }));
    this.movedRing = null;
  }

  remove() {
    this.edit("remove", (ln, body) => api.remove(ln.ln_id, body));
  }

  /** A new outline was drawn (`annotation`): ask for its label and reason. */
  drawn(annotation) {
    if (!this.user.may_amend) {
      this.viewer.discard(annotation.id);
      return;
    }
    this.draft = annotation;
    $("new-ln").hidden = false;
    $("new-ln-reason").value = "";
    $("new-ln-reason").focus();
  }

  add() {
    if (!this.draft) return;
    const reason = this.reason("new-ln-reason");
    if (reason === null) return;
    let ring;
    try {
      ring = annotationRing(this.draft);
    } catch (error) {
      $("edit-message").textContent = error.message;
      return;
    }
    const draft = this.draft;
    this.draft = null;
    $("new-ln").hidden = true;
    this.viewer.discard(draft.id);
    this.commit("add", api.addNode(this.slideId, { contour: ring, label: $("new-ln-label").value, reason }));
  }

  cancelDraft() {
    if (this.draft) this.viewer.discard(this.draft.id);
    this.draft = null;
    $("new-ln").hidden = true;
  }
}
