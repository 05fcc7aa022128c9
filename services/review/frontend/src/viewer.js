// The slide viewer: OpenSeadragon over the review service's deep-zoom tiles, LN outlines as an
// Annotorious layer (select, move vertices, draw), per-LN CAM heatmaps and lesion polygons as
// overlays, smear ROIs with occlusion maps, a minimap and a scale bar in mm.
import OpenSeadragon from "openseadragon";
import { UserSelectAction, createOSDAnnotator } from "@annotorious/openseadragon";
import "@annotorious/openseadragon/annotorious-openseadragon.css";
import { lnAnnotation } from "./geometry.js";
import { attachScaleBar } from "./scalebar.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = { positive: "#d7301f", itc: "#f28e2b", negative: "#2b6cb0", unscored: "#6b7280" };

/** The colour class of an LN: positive, itc (isolated tumour cells), negative or unscored. */
export function lnKind(ln) {
  if (ln.label === "positive") return ln.deposit_class === "itc" ? "itc" : "positive";
  if (ln.label === "negative") return "negative";
  return "unscored";
}

export class SlideViewer {
  /** element: the viewer's container; mayAmend: the user may edit outlines; handlers: {select(lnId|null),
   *  moved(lnId, annotation), drawn(annotation)} called on the user's actions. */
  constructor(element, mayAmend, handlers) {
    this.handlers = handlers;
    this.mayAmend = mayAmend;
    this.lns = new Map();
    this.heatmaps = new Map();
    this.lesions = new Map();
    this.roiOverlays = [];
    this.viewer = OpenSeadragon({
      element,
      prefixUrl: "assets/osd/",
      showNavigator: true,
      navigatorPosition: "BOTTOM_RIGHT",
      showRotationControl: false,
      maxZoomPixelRatio: 2,
      visibilityRatio: 0.5,
      gestureSettingsMouse: { clickToZoom: false },
    });
    this.anno = createOSDAnnotator(this.viewer, {
      userSelectAction: mayAmend ? UserSelectAction.EDIT : UserSelectAction.SELECT,
      drawingEnabled: false,
      // Report each outline change as it happens (not only when the LN is deselected), so the
      // editor can offer "Save outline" at once.
      autoSave: true,
      style: (annotation, state) => this.style(annotation, state),
    });
    this.anno.on("selectionChanged", (selected) => handlers.select(selected.length ? selected[0].id : null));
    this.anno.on("updateAnnotation", (annotation) => {
      if (this.lns.has(annotation.id)) handlers.moved(annotation.id, annotation);
    });
    this.anno.on("createAnnotation", (annotation) => {
      this.setDrawing(null);
      handlers.drawn(annotation);
    });
  }

  style(annotation, state) {
    const ln = this.lns.get(annotation.id);
    const colour = ln ? COLOURS[lnKind(ln)] : "#7c3aed";
    const confirmed = ln && ln.source === "pathologist";
    const selected = state && state.selected;
    return {
      stroke: colour,
      strokeWidth: selected ? 5 : confirmed ? 4 : 2,
      strokeOpacity: 1,
      fill: colour,
      fillOpacity: confirmed ? 0.18 : 0.04,
    };
  }

  /** Open the slide's deep-zoom descriptor (URL) and keep the scale bar at `mppX` um/px in step. */
  open(dziUrl, mppX, bar, label) {
    this.updateScale = attachScaleBar(this.viewer, mppX, bar, label);
    return new Promise((resolve, reject) => {
      this.viewer.addOnceHandler("open", () => resolve());
      this.viewer.addOnceHandler("open-failed", (event) => reject(new Error(event.message || "the slide did not open")));
      this.viewer.open(dziUrl);
    });
  }

  /** Draw `lns` (slide view LNs) as the outline layer, replacing what was drawn; keeps the selection. */
  showLymphNodes(lns) {
    const selected = this.anno.getSelected().map((a) => a.id);
    this.lns = new Map(lns.map((ln) => [ln.ln_id, ln]));
    this.anno.setAnnotations(lns.map(lnAnnotation), true);
    for (const id of [...this.heatmaps.keys()]) if (!this.lns.has(id)) this.toggleHeatmap(id, false);
    for (const id of [...this.lesions.keys()]) if (!this.lns.has(id)) this.toggleLesions(id, false);
    const kept = selected.filter((id) => this.lns.has(id));
    if (kept.length) this.anno.setSelected(kept[0], this.mayAmend);
  }

  /** How many LN outlines the annotation layer holds. */
  outlineCount() {
    return this.anno.getAnnotations().filter((a) => this.lns.has(a.id)).length;
  }

  /** Zoom to LN `lnId` and select it. */
  goTo(lnId) {
    this.anno.setSelected(lnId, this.mayAmend);
    this.anno.fitBounds(lnId, { padding: 60 });
  }

  /** Remove an unsaved drawn outline (by annotation id). */
  discard(annotationId) {
    this.anno.removeAnnotation(annotationId);
  }

  /** Start drawing an LN with `tool` ("polygon" or "rectangle"), or stop (null). */
  setDrawing(tool) {
    if (!tool) {
      this.anno.setDrawingEnabled(false);
      return;
    }
    this.anno.cancelSelected();
    this.anno.setDrawingTool(tool);
    this.anno.setDrawingMode(tool === "rectangle" ? "drag" : "click");
    this.anno.setDrawingEnabled(true);
  }

  _rect(box) {
    return this.viewer.viewport.imageToViewportRectangle(box.x, box.y, box.width, box.height);
  }

  /** Remove the overlay `overlays` holds for `lnId`, if any. */
  _dropOverlay(overlays, lnId) {
    const existing = overlays.get(lnId);
    if (!existing) return;
    this.viewer.removeOverlay(existing);
    overlays.delete(lnId);
  }

  /** Show or hide LN `lnId`'s CAM heatmap over its bounding box. */
  toggleHeatmap(lnId, on) {
    this._dropOverlay(this.heatmaps, lnId);
    const ln = this.lns.get(lnId);
    if (!on || !ln || !ln.heatmap_url) return;
    const image = document.createElement("img");
    image.className = "heatmap-overlay";
    image.alt = `CAM heatmap of LN ${ln.index}`;
    image.src = ln.heatmap_url;
    this.viewer.addOverlay({ element: image, location: this._rect(ln.bbox) });
    this.heatmaps.set(lnId, image);
  }

  /** Show or hide LN `lnId`'s lesion polygons (CAM > 0.5 regions, level-0 px). */
  toggleLesions(lnId, on) {
    this._dropOverlay(this.lesions, lnId);
    const ln = this.lns.get(lnId);
    if (!on || !ln || !ln.lesions.length) return;
    const box = ln.bbox;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.width} ${box.height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.classList.add("lesion-overlay");
    for (const ring of ln.lesions) {
      const polygon = document.createElementNS(SVG, "polygon");
      polygon.setAttribute("points", ring.map((p) => `${p[0]},${p[1]}`).join(" "));
      polygon.setAttribute("vector-effect", "non-scaling-stroke");
      svg.append(polygon);
    }
    this.viewer.addOverlay({ element: svg, location: this._rect(box) });
    this.lesions.set(lnId, svg);
  }

  /** Draw a smear's ROIs (level-0 boxes) with their index; `occlusion` says which show their map. */
  showRois(rois, occlusion) {
    for (const overlay of this.roiOverlays) this.viewer.removeOverlay(overlay);
    this.roiOverlays = [];
    for (const roi of rois) {
      const frame = document.createElement("div");
      frame.className = "roi-overlay";
      frame.dataset.roi = String(roi.index);
      frame.append(Object.assign(document.createElement("span"), { textContent: `ROI ${roi.index}` }));
      if (occlusion.has(roi.index) && roi.osm_url) {
        const image = document.createElement("img");
        image.className = "occlusion-overlay";
        image.alt = `occlusion map of ROI ${roi.index}`;
        image.src = roi.osm_url;
        frame.append(image);
      }
      this.viewer.addOverlay({ element: frame, location: this._rect(roi.bbox) });
      this.roiOverlays.push(frame);
    }
  }

  /** Zoom to a level-0 box {x, y, width, height}. */
  fit(box) {
    this.viewer.viewport.fitBounds(this._rect(box));
  }
}
