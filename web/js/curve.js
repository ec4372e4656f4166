// A per-layer curve for a gradient parameter. mergekit reads a list of
// numbers as anchors spread evenly over the layers and interpolates linearly
// between them (docs/mergekit-semantics.md); the editor draws the anchors as
// draggable points and the value each layer gets as small dots.
// Points are sliders for the keyboard: arrows change a value by 0.01
// (Shift: 0.1), Home/End go to the ends of the range.
import { el } from './api.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 600, H = 150, PAD_L = 34, PAD_R = 10, PAD_T = 10, PAD_B = 22;

function svg(tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// The value layer i of n gets from the anchors, as mergekit interpolates.
export function layerValue(anchors, i, n) {
  if (anchors.length === 1) return anchors[0];
  const pos = n > 1 ? (i / (n - 1)) * (anchors.length - 1) : 0;
  const lo = Math.min(Math.floor(pos), anchors.length - 2);
  const f = pos - lo;
  return anchors[lo] * (1 - f) + anchors[lo + 1] * f;
}

export function curveEditor({ name, values, layers, min, max, onchange }) {
  let anchors = values.slice();
  const lo = min ?? Math.min(0, ...anchors), hi = max ?? Math.max(1, ...anchors);
  const box = el('div', { class: 'curve' });
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': `${name} per layer` });
  const x = (i) => PAD_L + (anchors.length > 1 ? i / (anchors.length - 1) : 0.5) * (W - PAD_L - PAD_R);
  const y = (v) => PAD_T + (1 - (v - lo) / (hi - lo || 1)) * (H - PAD_T - PAD_B);
  const value = (py) => lo + (1 - (py - PAD_T) / (H - PAD_T - PAD_B)) * (hi - lo);
  const clamp = (v) => Math.round(Math.min(hi, Math.max(lo, v)) * 1000) / 1000;
  let dragging = -1;

  function draw(focus = -1) {
    s.replaceChildren();
    for (const v of [lo, (lo + hi) / 2, hi]) {
      s.append(svg('line', { class: 'axis', x1: PAD_L, x2: W - PAD_R, y1: y(v), y2: y(v) }));
      const t = svg('text', { class: 'lbl', x: 2, y: y(v) + 3 });
      t.textContent = String(+v.toFixed(2));
      s.append(t);
    }
    const n = Math.max(1, layers);
    for (let i = 0; i < n; i++) {
      const px = PAD_L + (n > 1 ? i / (n - 1) : 0.5) * (W - PAD_L - PAD_R);
      s.append(svg('circle', { cx: px, cy: y(layerValue(anchors, i, n)), r: 1.8, fill: 'currentColor',
                               opacity: 0.45 }));
    }
    for (const [i, label] of [[0, 'layer 0'], [n - 1, `layer ${n - 1}`]]) {
      const t = svg('text', { class: 'lbl', x: PAD_L + (n > 1 ? i / (n - 1) : 0.5) * (W - PAD_L - PAD_R),
                              y: H - 6, 'text-anchor': i ? 'end' : 'start' });
      t.textContent = label;
      s.append(t);
    }
    s.append(svg('polyline', { class: 'pline', points: anchors.map((v, i) => `${x(i)},${y(v)}`).join(' ') }));
    anchors.forEach((v, i) => {
      const p = svg('circle', { class: 'pt', cx: x(i), cy: y(v), r: 7, tabindex: 0, role: 'slider',
                                'aria-label': `${name} anchor ${i + 1} of ${anchors.length}`,
                                'aria-valuemin': lo, 'aria-valuemax': hi, 'aria-valuenow': v,
                                'data-index': i });
      const title = svg('title');
      title.textContent = `${name}[${i}] = ${v}`;
      p.append(title);
      p.addEventListener('pointerdown', (e) => {
        dragging = i;
        s.setPointerCapture(e.pointerId);
        e.preventDefault();
      });
      p.addEventListener('keydown', (e) => {
        const step = e.shiftKey ? 0.1 : 0.01;
        let v2 = anchors[i];
        if (e.key === 'ArrowUp' || e.key === 'ArrowRight') v2 += step;
        else if (e.key === 'ArrowDown' || e.key === 'ArrowLeft') v2 -= step;
        else if (e.key === 'Home') v2 = lo;
        else if (e.key === 'End') v2 = hi;
        else return;
        e.preventDefault();
        anchors[i] = clamp(v2);
        draw(i);
        onchange(anchors.slice());
      });
      s.append(p);
    });
    if (focus >= 0) s.querySelector(`[data-index="${focus}"]`)?.focus();
    readout.textContent = `anchors: [${anchors.join(', ')}]`;
  }

  s.addEventListener('pointermove', (e) => {
    if (dragging < 0) return;
    const r = s.getBoundingClientRect();
    anchors[dragging] = clamp(value(((e.clientY - r.top) / r.height) * H));
    draw();
  });
  s.addEventListener('pointerup', () => {
    if (dragging < 0) return;
    dragging = -1;
    onchange(anchors.slice());
  });

  const readout = el('span', { class: 'mono' });
  const add = el('button', { type: 'button', text: 'Add anchor', onclick: () => {
    anchors.push(anchors[anchors.length - 1]);
    draw(); onchange(anchors.slice());
  } });
  const remove = el('button', { type: 'button', text: 'Remove anchor', onclick: () => {
    if (anchors.length > 2) { anchors.pop(); draw(); onchange(anchors.slice()); }
  } });
  box.append(s, el('div', { class: 'bar' }, add, remove, readout));
  draw();
  // The layer count changes only the dots: redraw in place, so nothing the
  // user is about to click is replaced.
  box.setLayers = (n) => { layers = n; draw(); };
  return box;
}
