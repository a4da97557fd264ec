// The numerical pipeline of kdlandmarks.LandmarkDetector (backend onnx, detector retinaface), without the DOM
// or onnxruntime: images are {data: Uint8Array RGB, width, height}. Every parameter comes from the model's
// runtime description (the JSON beside the ONNX file, written by kdlandmarks.modelspec), so the numbers
// are those of the Python package:
//   - resizes: OpenCV's INTER_AREA (cv2.resize), the general path and the 2x2 fast path;
//   - crops: crop.CropTransform (pixel centres, area pre-shrink, bilinear, replicated border);
//   - RetinaFace: detection.RetinaFaceDetector (anchors, variances, NMS, thresholds, shrinking);
//   - smoothing: video.LandmarkSmoother (One-Euro filter per track, IoU tracker).

// Python's round(): half to even (numpy.rint and OpenCV's cvRound do the same).
export function roundHalfEven(x) {
  const r = Math.round(x); // half up
  return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

const f32 = Math.fround;

function sat8(v) {
  const r = roundHalfEven(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

export function rgbaToRgb(rgba, width, height) {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[i * 3] = rgba[j];
    out[i * 3 + 1] = rgba[j + 1];
    out[i * 3 + 2] = rgba[j + 2];
  }
  return { data: out, width, height };
}

// OpenCV computeResizeAreaTab: (dst index, src index, weight) triples for one axis.
function areaTab(ssize, dsize, scale) {
  const di = [], si = [], alpha = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) { di.push(dx); si.push(sx1 - 1); alpha.push(f32((sx1 - fsx1) / cellWidth)); }
    for (let sx = sx1; sx < sx2; sx++) { di.push(dx); si.push(sx); alpha.push(f32(1.0 / cellWidth)); }
    if (fsx2 - sx2 > 1e-3) {
      di.push(dx); si.push(sx2); alpha.push(f32(Math.min(Math.min(fsx2 - sx2, 1.0), cellWidth) / cellWidth));
    }
  }
  return { di, si, alpha };
}

// cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA) for a shrink (dw <= w, dh <= h), computed only on
// the output window [x0, x1) x [y0, y1) (default: all of it), with OpenCV's float32 arithmetic. Returns
// {data, width, height, x0, y0}: the window's pixels (its own width x height) and where it sits.
export function resizeArea(img, dw, dh, win = null) {
  const { data: src, width: w, height: h } = img;
  const x0 = win ? win.x0 : 0, y0 = win ? win.y0 : 0;
  const x1 = win ? win.x1 : dw, y1 = win ? win.y1 : dh;
  const ow = x1 - x0, oh = y1 - y0;
  const out = new Uint8Array(Math.max(ow, 0) * Math.max(oh, 0) * 3);
  if (ow <= 0 || oh <= 0) return { data: out, width: Math.max(ow, 0), height: Math.max(oh, 0), x0, y0 };
  const scaleX = w / dw, scaleY = h / dh;
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < 2.220446049250313e-16 && Math.abs(scaleY - iy) < 2.220446049250313e-16) {
    // resizeAreaFast: integer factors; 2x2 runs OpenCV's SIMD kernel ((sum + 2) >> 2), others sum * (1/area).
    const area = ix * iy, inv = f32(1 / area);
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let yy = 0; yy < iy; yy++) {
            const row = ((y * iy + yy) * w + x * ix) * 3 + c;
            for (let xx = 0; xx < ix; xx++) s += src[row + xx * 3];
          }
          out[((y - y0) * ow + (x - x0)) * 3 + c] = (ix === 2 && iy === 2) ? (s + 2) >> 2 : sat8(f32(s * inv));
        }
      }
    }
    return { data: out, width: ow, height: oh, x0, y0 };
  }
  // The general path: horizontal weights per source row, accumulated into output rows (float32).
  const xt = areaTab(w, dw, scaleX), yt = areaTab(h, dh, scaleY);
  // Only the x-table entries of the window's columns.
  let nk = 0;
  for (let k = 0; k < xt.di.length; k++) nk += (xt.di[k] >= x0 && xt.di[k] < x1) ? 1 : 0;
  const xs = new Int32Array(nk), xd = new Int32Array(nk), xa = new Float32Array(nk);
  for (let k = 0, q = 0; k < xt.di.length; k++) {
    if (xt.di[k] >= x0 && xt.di[k] < x1) { xd[q] = (xt.di[k] - x0) * 3; xs[q] = xt.si[k] * 3; xa[q++] = xt.alpha[k]; }
  }
  const buf = new Float32Array(ow * 3), sum = new Float32Array(ow * 3);
  let prev = -1;
  const flush = (dy) => {
    const o = (dy - y0) * ow * 3;
    for (let i = 0; i < ow * 3; i++) out[o + i] = sat8(sum[i]);
  };
  for (let j = 0; j < yt.di.length; j++) {
    const dy = yt.di[j];
    if (dy < y0 || dy >= y1) continue;
    const beta = yt.alpha[j];
    const row = yt.si[j] * w * 3;
    buf.fill(0);
    for (let k = 0; k < nk; k++) {
      const s = row + xs[k], d = xd[k], a = xa[k];
      buf[d] = buf[d] + f32(src[s] * a);
      buf[d + 1] = buf[d + 1] + f32(src[s + 1] * a);
      buf[d + 2] = buf[d + 2] + f32(src[s + 2] * a);
    }
    if (dy !== prev) {
      if (prev >= 0) flush(prev);
      for (let i = 0; i < ow * 3; i++) sum[i] = f32(beta * buf[i]);
      prev = dy;
    } else {
      for (let i = 0; i < ow * 3; i++) sum[i] = sum[i] + f32(beta * buf[i]);
    }
  }
  if (prev >= 0) flush(prev);
  return { data: out, width: ow, height: oh, x0, y0 };
}

// cv2.invertAffineTransform of [[a, b, c], [d, e, f]] as a flat array [a, b, c, d, e, f].
export function invertAffine(m) {
  const [a, b, c, d, e, f] = m;
  let D = a * e - b * d;
  D = D !== 0 ? 1.0 / D : 0.0;
  const A11 = e * D, A22 = a * D, A12 = -b * D, A21 = -d * D;
  return [A11, A12, -A11 * c - A12 * f, A21, A22, -A21 * c - A22 * f];
}

// cv2.warpAffine(src, m, (size, size), INTER_LINEAR, BORDER_REPLICATE) where `src` is a window of a
// (fullW x fullH) image at (src.x0, src.y0) holding every pixel the warp reads. Output RGB uint8. The
// arithmetic is that of OpenCV's own kernel (warpAffineLinearInvoker_8UC3: float32 coordinates and
// interpolation, fused multiply-adds in the vector loop, round half to even): bit-identical to cv2.warpAffine with
// cv2.ipp.setUseIPP(False). OpenCV builds with Intel IPP (the opencv-python wheels) use IPP's warp instead,
// which rounds ~0.3 % of the pixels the other way (by 1).
function warpBilinear(src, fullW, fullH, m, size) {
  const inv = invertAffine(m).map(f32);
  const out = new Uint8Array(size * size * 3);
  const { data, width: ww, x0: ox, y0: oy } = src;
  const cx = (x) => ((x < 0 ? 0 : x >= fullW ? fullW - 1 : x) - ox) * 3; // replicated border
  const cy = (y) => ((y < 0 ? 0 : y >= fullH ? fullH - 1 : y) - oy) * ww * 3;
  for (let v = 0; v < size; v++) {
    const mx = f32(f32(v * inv[1]) + inv[2]), my = f32(f32(v * inv[4]) + inv[5]); // per row: no fma
    for (let u = 0; u < size; u++) {
      const X = f32(inv[0] * u + mx), Y = f32(inv[3] * u + my); // per pixel: fma
      const xi = Math.floor(X), yi = Math.floor(Y);
      const ax = f32(X - xi), ay = f32(Y - yi);
      const c0 = cx(xi), c1 = cx(xi + 1), r0 = cy(yi), r1 = cy(yi + 1);
      const p00 = r0 + c0, p01 = r0 + c1, p10 = r1 + c0, p11 = r1 + c1;
      const o = (v * size + u) * 3;
      for (let c = 0; c < 3; c++) {
        const a = data[p00 + c], b = data[p10 + c];
        const top = f32(a + ax * (data[p01 + c] - a));
        const bottom = f32(b + ax * (data[p11 + c] - b));
        out[o + c] = sat8(f32(top + ay * f32(bottom - top)));
      }
    }
  }
  return out;
}

// The window of a (w x h) image that a warp with forward map `m` (image -> size x size crop) reads.
function sourceWindow(m, size, w, h) {
  const inv = invertAffine(m);
  let xmin = Infinity, ymin = Infinity, xmax = -Infinity, ymax = -Infinity;
  for (const [u, v] of [[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]) {
    const X = inv[0] * u + inv[1] * v + inv[2], Y = inv[3] * u + inv[4] * v + inv[5];
    xmin = Math.min(xmin, X); xmax = Math.max(xmax, X); ymin = Math.min(ymin, Y); ymax = Math.max(ymax, Y);
  }
  const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
  return {
    x0: clamp(Math.floor(xmin) - 1, w - 1), x1: clamp(Math.ceil(xmax) + 2, w - 1) + 1,
    y0: clamp(Math.floor(ymin) - 1, h - 1), y1: clamp(Math.ceil(ymax) + 2, h - 1) + 1,
  };
}

function fullWindow(img) {
  return { data: img.data, width: img.width, height: img.height, x0: 0, y0: 0 };
}

// crop.BoxCalibration.square
export function calibratedSquare(box, cal) {
  const [x0, y0, x1, y1] = box;
  const side = Math.sqrt(Math.max(x1 - x0, 1e-6) * Math.max(y1 - y0, 1e-6));
  return [(x0 + x1) / 2 + cal.dx * side, (y0 + y1) / 2 + cal.dy * side, cal.scale * side];
}

// crop.CropTransform.from_square: the (2, 3) map from image pixel centres to crop pixel centres.
export function cropMatrix(cx, cy, side, size) {
  if (!Number.isFinite(cx) || !Number.isFinite(cy) || !Number.isFinite(side) || side <= 0) {
    throw new Error(`invalid crop window centre=(${cx}, ${cy}) side=${side}`);
  }
  const s = size / side, x0 = cx - side / 2, y0 = cy - side / 2;
  return [s, 0, -x0 * s - 0.5, 0, s, -y0 * s - 0.5];
}

// crop.CropTransform.warp: the size x size RGB crop of `img` (area pre-shrink when the crop shrinks).
export function warpCrop(img, m, size) {
  const { width: w, height: h } = img;
  if (m[0] < 1.0) {
    const factor = m[0];
    const sw = Math.max(1, roundHalfEven(w * factor)), sh = Math.max(1, roundHalfEven(h * factor));
    const sx = sw / w, sy = sh / h;
    // small pixel u' relates to image pixel x by x = (u' + 0.5) / sx - 0.5: m @ pre
    const pre = [1 / sx, 0, 0.5 / sx - 0.5, 0, 1 / sy, 0.5 / sy - 0.5];
    const mm = [
      m[0] * pre[0] + m[1] * pre[3], m[0] * pre[1] + m[1] * pre[4], m[0] * pre[2] + m[1] * pre[5] + m[2],
      m[3] * pre[0] + m[4] * pre[3], m[3] * pre[1] + m[4] * pre[4], m[3] * pre[2] + m[4] * pre[5] + m[5],
    ];
    const small = resizeArea(img, sw, sh, sourceWindow(mm, size, sw, sh));
    return warpBilinear(small, sw, sh, mm, size);
  }
  return warpBilinear(fullWindow(img), w, h, m, size);
}

// crop.CropTransform.to_image: crop pixel centres -> image pixel centres.
export function toImage(m, points) {
  const inv = invertAffine(m);
  return points.map(([x, y]) => [x * inv[0] + y * inv[1] + inv[2], x * inv[3] + y * inv[4] + inv[5]]);
}

// The network input of crops: NCHW float32, x = (pixel * scale - mean) / std in the spec's channel order.
export function cropsToTensor(crops, size, inputSpec) {
  const order = inputSpec.channels === "BGR" ? [2, 1, 0] : [0, 1, 2];
  const { scale, mean, std } = inputSpec;
  const plane = size * size;
  const out = new Float32Array(crops.length * 3 * plane);
  crops.forEach((crop, b) => {
    for (let c = 0; c < 3; c++) {
      const o = (b * 3 + c) * plane, ch = order[c];
      for (let i = 0; i < plane; i++) out[o + i] = (crop[i * 3 + ch] * scale - mean[c]) / std[c];
    }
  });
  return out;
}

// codec.LandmarkCodec.decode of one face's output vector -> [[x, y], ...] in input pixels.
export function decodeLandmarks(vector, offset, numPoints, inputSize, space) {
  const pts = [];
  for (let k = 0; k < numPoints; k++) {
    const u = vector[offset + 2 * k], v = vector[offset + 2 * k + 1];
    pts.push(space === "pixels" ? [u, v] : [(u + 0.5) * inputSize - 0.5, (v + 0.5) * inputSize - 0.5]);
  }
  return pts;
}

// ---------------------------------------------------------------------------------------------------
// RetinaFace
// ---------------------------------------------------------------------------------------------------

// detection._retinaface_priors: (P, 4) anchors cx, cy, w, h in input pixels, in the network's output order.
export function retinafacePriors(height, width, det) {
  const out = [];
  det.strides.forEach((stride, si) => {
    const fh = Math.ceil(height / stride), fw = Math.ceil(width / stride);
    for (let i = 0; i < fh; i++) {
      for (let j = 0; j < fw; j++) {
        for (const s of det.min_sizes[si]) out.push([(j + 0.5) * stride, (i + 0.5) * stride, s, s]);
      }
    }
  });
  return out;
}

// The detector's input tensor for an RGB image: NCHW float32, x = (pixel - mean) * scale in BGR order.
export function detectorTensor(img, det) {
  const { data, width, height } = img;
  const order = det.channels === "BGR" ? [2, 1, 0] : [0, 1, 2];
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const ch = order[c], mean = det.mean[c], o = c * plane;
    for (let i = 0; i < plane; i++) out[o + i] = (data[i * 3 + ch] - mean) * det.scale;
  }
  return out;
}

// detection.box_iou of one box with one box.
export function boxIou(a, b) {
  const iw = Math.max(Math.min(a[2], b[2]) - Math.max(a[0], b[0]), 0);
  const ih = Math.max(Math.min(a[3], b[3]) - Math.max(a[1], b[1]), 0);
  const inter = iw * ih;
  const area = (x) => Math.max(x[2] - x[0], 0) * Math.max(x[3] - x[1], 0);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / Math.max(union, 1e-12) : 0;
}

// detection.nms: indices kept by greedy non-maximum suppression, best score first (stable order).
export function nms(boxes, scores, threshold) {
  let order = scores.map((s, i) => i).sort((i, j) => (scores[j] - scores[i]) || (i - j));
  const keep = [];
  while (order.length) {
    const i = order[0];
    keep.push(i);
    order = order.slice(1).filter((k) => boxIou(boxes[i], boxes[k]) <= threshold);
  }
  return keep;
}

// The shrink of RetinaFaceDetector.detect: (image for the network, scale of its boxes).
export function detectorInput(img, det) {
  const { width: w, height: h } = img;
  if (det.max_size && Math.max(h, w) > det.max_size) {
    const scale = det.max_size / Math.max(h, w);
    const small = resizeArea(img, Math.max(1, roundHalfEven(w * scale)), Math.max(1, roundHalfEven(h * scale)));
    return { image: small, scale };
  }
  return { image: img, scale: 1.0 };
}

// RetinaFaceDetector.detect after the network: outputs loc (P*4), conf (P*2), landm (P*10) -> detections
// [{box, score, keypoints}] in the pixels of the image the detector was given (w x h).
export function decodeRetinaface(loc, conf, landm, inputW, inputH, scale, w, h, det) {
  const priors = retinafacePriors(inputH, inputW, det);
  if (priors.length * 4 !== loc.length) {
    throw new Error(`face detector 'retinaface': ${loc.length / 4} outputs for ${priors.length} anchors`);
  }
  const [v0, v1] = det.variance;
  const boxes = [], scores = [], points = [];
  for (let p = 0; p < priors.length; p++) {
    const score = conf[p * 2 + 1];
    if (!(score > det.score_threshold)) continue;
    const [pcx, pcy, pw, ph] = priors[p];
    const cx = pcx + loc[p * 4] * v0 * pw, cy = pcy + loc[p * 4 + 1] * v0 * ph;
    const sw = pw * Math.exp(loc[p * 4 + 2] * v1), sh = ph * Math.exp(loc[p * 4 + 3] * v1);
    boxes.push([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2]);
    scores.push(score);
    const kp = [];
    for (let k = 0; k < 5; k++) {
      kp.push([pcx + landm[p * 10 + 2 * k] * v0 * pw, pcy + landm[p * 10 + 2 * k + 1] * v0 * ph]);
    }
    points.push(kp);
  }
  const out = [];
  for (const i of nms(boxes, scores, det.nms_threshold)) {
    // Continuous network coordinates (pixel j spans [j, j+1]) -> pixel-centre frame.
    let box = boxes[i].map((v) => v / scale - 0.5);
    if (Math.min(box[2] - box[0], box[3] - box[1]) < det.min_face) continue;
    const hi = [w - 0.5, h - 0.5, w - 0.5, h - 0.5];
    box = box.map((v, k) => Math.min(Math.max(v, -0.5), hi[k]));
    out.push({ box, score: scores[i], keypoints: points[i].map(([x, y]) => [x / scale - 0.5, y / scale - 0.5]) });
  }
  return out;
}

// LandmarkDetector._detect_faces: the image the detector runs on (shrunk to detect_max_side) and how to map
// its boxes back.
export function detectionImage(img, det) {
  const { width: w, height: h } = img;
  const limit = det.detect_max_side;
  if (!limit || Math.max(h, w) <= limit) return { image: img, sx: 1, sy: 1, shrunk: false };
  const s = limit / Math.max(h, w);
  const small = resizeArea(img, Math.max(1, roundHalfEven(w * s)), Math.max(1, roundHalfEven(h * s)));
  return { image: small, sx: small.width / w, sy: small.height / h, shrunk: true };
}

export function unshrinkDetection(d, sx, sy) {
  const back = ([x, y]) => [(x + 0.5) / sx - 0.5, (y + 0.5) / sy - 0.5];
  const [a, b] = [back([d.box[0], d.box[1]]), back([d.box[2], d.box[3]])];
  return { box: [a[0], a[1], b[0], b[1]], score: d.score, keypoints: d.keypoints && d.keypoints.map(back) };
}

// ---------------------------------------------------------------------------------------------------
// Smoothing (video.py)
// ---------------------------------------------------------------------------------------------------

export class OneEuroFilter {
  constructor({ min_cutoff = 1.0, beta = 0.0, d_cutoff = 1.0, freq = 30.0 } = {}) {
    if (min_cutoff <= 0 || d_cutoff <= 0 || freq <= 0 || beta < 0) {
      throw new Error("One-Euro filter needs min_cutoff, d_cutoff, freq > 0 and beta >= 0");
    }
    Object.assign(this, { minCutoff: min_cutoff, beta, dCutoff: d_cutoff, freq });
    this.reset();
  }

  reset() { this.x = null; this.dx = null; this.t = null; }

  static alpha(cutoff, dt) {
    const tau = 1.0 / (2 * Math.PI * cutoff);
    return 1.0 / (1.0 + tau / dt);
  }

  filter(x, t = null) {
    if (this.x === null || this.x.length !== x.length) {
      this.x = Float64Array.from(x); this.dx = new Float64Array(x.length); this.t = t;
      return Float64Array.from(x);
    }
    let dt = 1.0 / this.freq;
    if (t !== null && this.t !== null && t > this.t) dt = t - this.t;
    this.t = t;
    const ad = OneEuroFilter.alpha(this.dCutoff, dt);
    for (let i = 0; i < x.length; i++) {
      const dx = (x[i] - this.x[i]) / dt;
      this.dx[i] = this.dx[i] + ad * (dx - this.dx[i]);
      const cutoff = this.minCutoff + this.beta * Math.abs(this.dx[i]);
      this.x[i] = this.x[i] + OneEuroFilter.alpha(cutoff, dt) * (x[i] - this.x[i]);
    }
    return Float64Array.from(this.x);
  }
}

export class IoUTracker {
  constructor(iouThreshold = 0.3, maxMissed = 10) {
    this.iouThreshold = iouThreshold; this.maxMissed = maxMissed;
    this.tracks = new Map(); this.nextId = 0;
  }

  update(boxes) {
    const ids = [...this.tracks.keys()];
    const pairs = [];
    ids.forEach((tid, j) => boxes.forEach((box, i) => {
      const iou = boxIou(this.tracks.get(tid).box, box);
      if (iou >= this.iouThreshold) pairs.push([iou, j, i]);
    }));
    pairs.sort((a, b) => b[0] - a[0]);
    const assigned = new Map(), used = new Set();
    for (const [, j, i] of pairs) {
      if (assigned.has(i) || used.has(j)) continue;
      assigned.set(i, this.tracks.get(ids[j])); used.add(j);
    }
    ids.forEach((tid, j) => {
      if (!used.has(j)) {
        const tr = this.tracks.get(tid);
        tr.missed += 1;
        if (tr.missed > this.maxMissed) this.tracks.delete(tid);
      }
    });
    return boxes.map((box, i) => {
      let track = assigned.get(i);
      if (!track) {
        track = { id: this.nextId++, box: box.slice(), missed: 0, age: 0, state: {} };
        this.tracks.set(track.id, track);
      } else {
        track.box = box.slice(); track.missed = 0; track.age += 1;
      }
      return track;
    });
  }
}

// video.LandmarkSmoother: tracks faces and One-Euro-filters each track's landmarks and box in face-size units.
export class LandmarkSmoother {
  constructor(params) {
    this.params = { min_cutoff: params.min_cutoff, beta: params.beta, d_cutoff: params.d_cutoff, freq: params.fps };
    new OneEuroFilter(this.params); // validate now
    this.tracker = new IoUTracker(params.iou_threshold, params.max_missed);
  }

  update(faces, t = null) {
    const tracks = this.tracker.update(faces.map((f) => f.box));
    return faces.map((face, k) => {
      const track = tracks[k];
      if (!track.state.filter) {
        const [x0, y0, x1, y1] = face.box;
        track.state.scale = Math.max(Math.sqrt(Math.max(x1 - x0, 1e-6) * Math.max(y1 - y0, 1e-6)), 1e-6);
        track.state.filter = new OneEuroFilter(this.params);
      }
      const scale = track.state.scale;
      const signal = [...face.landmarks.flat(), ...face.box].map((v) => v / scale);
      const smooth = Array.from(track.state.filter.filter(signal, t), (v) => v * scale);
      const n = smooth.length - 4;
      const landmarks = [];
      for (let i = 0; i < n; i += 2) landmarks.push([smooth[i], smooth[i + 1]]);
      return { track: track.id, face: { ...face, landmarks, box: smooth.slice(n) } };
    });
  }
}
