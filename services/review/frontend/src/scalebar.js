// A scale bar in millimetres under the viewer, kept to a round length near 120 screen pixels.

const STEPS = [1, 2, 5];

/** The round length (um) nearest below `targetUm`: 1, 2 or 5 times a power of ten. */
export function roundLength(targetUm) {
  const power = Math.pow(10, Math.floor(Math.log10(targetUm)));
  let best = power;
  for (const step of STEPS) if (step * power <= targetUm) best = step * power;
  return best;
}

/** Keep `bar` (an element sized through CSSOM) and `label` in step with `viewer` for a slide at `mppX` um/px. */
export function attachScaleBar(viewer, mppX, bar, label) {
  const update = () => {
    if (!mppX || !viewer.world.getItemCount()) {
      label.textContent = "scale unknown";
      return;
    }
    const imageZoom = viewer.world.getItemAt(0).viewportToImageZoom(viewer.viewport.getZoom(true));
    const umPerScreenPx = mppX / imageZoom;
    const lengthUm = roundLength(umPerScreenPx * 120);
    bar.style.width = `${Math.round(lengthUm / umPerScreenPx)}px`;
    const mm = lengthUm / 1000;
    label.textContent = `${mm >= 1 ? mm.toFixed(0) : mm.toPrecision(1)} mm`;
  };
  viewer.addHandler("animation", update);
  viewer.addHandler("open", update);
  viewer.addHandler("resize", update);
  return update;
}
