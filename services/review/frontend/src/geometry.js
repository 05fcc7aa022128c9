// Level-0 pixel geometry shared by the viewer's layers: LN outlines as Annotorious annotations and back.

/** [[x, y], ...] level-0 px -> {minX, minY, maxX, maxY}. */
export function bounds(points) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  return { minX: Math.min(...xs), minY: Math.min(...ys), maxX: Math.max(...xs), maxY: Math.max(...ys) };
}

/** An LN ({ln_id, contour: [[x, y], ...] level-0 px}) as an Annotorious polygon annotation. */
export function lnAnnotation(ln) {
  const points = ln.contour.map((p) => [p[0], p[1]]);
  return {
    id: ln.ln_id,
    bodies: [],
    target: { annotation: ln.ln_id, selector: { type: "POLYGON", geometry: { points, bounds: bounds(points) } } },
  };
}

/** An Annotorious annotation's shape (polygon or rectangle) as a level-0 ring [[x, y], ...], rounded to 0.1 px. */
export function annotationRing(annotation) {
  const selector = annotation.target.selector;
  const g = selector.geometry;
  let ring;
  if (selector.type === "RECTANGLE") {
    ring = [
      [g.x, g.y],
      [g.x + g.w, g.y],
      [g.x + g.w, g.y + g.h],
      [g.x, g.y + g.h],
    ];
  } else if (selector.type === "POLYGON") {
    ring = g.points;
  } else {
    throw new Error(`An LN outline must be a polygon or a rectangle, not ${selector.type}.`);
  }
  return ring.map((p) => [Math.round(p[0] * 10) / 10, Math.round(p[1] * 10) / 10]);
}
