// The numerical pipeline of kdlandmarks.LandmarkDetector (backend onnx, detector retinaface), without the DOM
// or onnxruntime: images are {data: Uint8Array RGB, width, height}. Every parameter comes from the model's
// runtime description (the JSON beside the ONNX file, written by kdlandmarks.modelspec), so the numbers
// are those of the Python package:
//   - resizes: OpenCV's INTER_AREA (cv2.resize), the general path and the 2x2 fast path;
//   - crops: crop.CropTransform (pixel centres, area pre-shrink, bilinear, replicated border);
//   - RetinaFace: detection.RetinaFaceDetector (anchors, variances, NMS, thresholds, shrinking);
//   - video: tracking.LandmarkTracker (crops from the last landmarks, the detector only to find new or lost
//     faces) and video.FaceFilter (One-Euro filter per track).

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

// cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA) for a shrink (dw <= w, dh <= h), with OpenCV's
// float32 arithmetic; `scale` [sx, sy]: source pixels per output pixel when not w / dw and h / dh (cv2.resize
// with fx = 1 / sx, fy = 1 / sy). Returns {data, width, height}.
export function resizeArea(img, dw, dh, scale = null) {
  const { data: src, width: w, height: h } = img;
  const out = new Uint8Array(dw * dh * 3);
  const [scaleX, scaleY] = scale || [w / dw, h / dh];
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < 2.220446049250313e-16 && Math.abs(scaleY - iy) < 2.220446049250313e-16) {
    // resizeAreaFast: integer factors; 2x2 runs OpenCV's SIMD kernel ((sum + 2) >> 2), others sum * (1/area).
    const area = ix * iy, inv = f32(1 / area);
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let yy = 0; yy < iy; yy++) {
            const row = ((y * iy + yy) * w + x * ix) * 3 + c;
            for (let xx = 0; xx < ix; xx++) s += src[row + xx * 3];
          }
          out[(y * dw + x) * 3 + c] = (ix === 2 && iy === 2) ? (s + 2) >> 2 : sat8(f32(s * inv));
        }
      }
    }
    return { data: out, width: dw, height: dh };
  }
  // The general path: horizontal weights per source row, accumulated into output rows (float32).
  const xt = areaTab(w, dw, scaleX), yt = areaTab(h, dh, scaleY);
  const nk = xt.di.length;
  const xs = Int32Array.from(xt.si, (v) => v * 3), xd = Int32Array.from(xt.di, (v) => v * 3), xa = Float32Array.from(xt.alpha);
  const buf = new Float32Array(dw * 3), sum = new Float32Array(dw * 3);
  let prev = -1;
  const flush = (dy) => {
    const o = dy * dw * 3;
    for (let i = 0; i < dw * 3; i++) out[o + i] = sat8(sum[i]);
  };
  for (let j = 0; j < yt.di.length; j++) {
    const dy = yt.di[j];
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
      for (let i = 0; i < dw * 3; i++) sum[i] = f32(beta * buf[i]);
      prev = dy;
    } else {
      for (let i = 0; i < dw * 3; i++) sum[i] = sum[i] + f32(beta * buf[i]);
    }
  }
  if (prev >= 0) flush(prev);
  return { data: out, width: dw, height: dh };
}

// cv2.invertAffineTransform of [[a, b, c], [d, e, f]] as a flat array [a, b, c, d, e, f].
export function invertAffine(m) {
  const [a, b, c, d, e, f] = m;
  let D = a * e - b * d;
  D = D !== 0 ? 1.0 / D : 0.0;
  const A11 = e * D, A22 = a * D, A12 = -b * D, A21 = -d * D;
  return [A11, A12, -A11 * c - A12 * f, A21, A22, -A21 * c - A22 * f];
}

// cv2.warpAffine(src, m, (size, size), INTER_LINEAR, BORDER_REPLICATE) of an RGB image. Output RGB uint8. The
// arithmetic is that of OpenCV's own kernel (warpAffineLinearInvoker_8UC3: float32 coordinates and
// interpolation, fused multiply-adds in the vector loop, round half to even): bit-identical to cv2.warpAffine with
// cv2.ipp.setUseIPP(False). OpenCV builds with Intel IPP (the opencv-python wheels) use IPP's warp instead,
// which rounds ~0.3 % of the pixels the other way (by 1).
function warpBilinear(src, m, size) {
  const inv = invertAffine(m).map(f32);
  const out = new Uint8Array(size * size * 3);
  const { data, width, height } = src;
  const cx = (x) => (x < 0 ? 0 : x >= width ? width - 1 : x) * 3; // replicated border
  const cy = (y) => (y < 0 ? 0 : y >= height ? height - 1 : y) * width * 3;
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

// CropTransform._source_region: the pixel rectangle [x0, x1) x [y0, y1) of a w x h image that the crop of
// matrix m reads, grown by `reach` image pixels each way and clipped to the image (never empty).
function sourceRegion(m, size, w, h, reach) {
  const edge = size - 0.5;
  const corners = toImage(m, [[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]]);
  const lo = [0, 1].map((k) => Math.floor(Math.min(...corners.map((c) => c[k])) - reach));
  const hi = [0, 1].map((k) => Math.ceil(Math.max(...corners.map((c) => c[k])) + reach) + 1);
  const limit = [w, h];
  const l = lo.map((v, k) => Math.min(Math.max(v, 0), limit[k] - 1));
  const u = hi.map((v, k) => Math.min(Math.max(v, l[k] + 1), limit[k]));
  return { x0: l[0], y0: l[1], x1: u[0], y1: u[1] };
}

// crop._on_area_grid: the last pixel at or before `start` within `tolerance` (shrunk pixels) of a bin edge
// of the area filter that shrinks by `scale`.
function onAreaGrid(start, scale, tolerance) {
  for (let s = start; s > 0; s--) if (Math.abs(s * scale - roundHalfEven(s * scale)) <= tolerance) return s;
  return 0;
}

function subImage(img, x0, y0, x1, y1) {
  const { data, width } = img;
  const rw = x1 - x0, out = new Uint8Array(rw * (y1 - y0) * 3);
  for (let y = y0; y < y1; y++) out.set(data.subarray((y * width + x0) * 3, (y * width + x1) * 3), (y - y0) * rw * 3);
  return { data: out, width: rw, height: y1 - y0 };
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

// crop.CropTransform.warp: the size x size RGB crop of `img`. A shrinking crop is area-filtered first, on
// the region it reads only, starting within `gridTolerance` (the spec's crop.area_grid_tolerance) of a bin
// edge of shrinking the whole image (cv2.resize with fx, fy).
export function warpCrop(img, m, size, gridTolerance) {
  const { width: w, height: h } = img;
  if (m[0] >= 1.0) return warpBilinear(img, m, size);
  const factor = m[0];
  const scaleX = Math.max(1, roundHalfEven(w * factor)) / w, scaleY = Math.max(1, roundHalfEven(h * factor)) / h;
  const r = sourceRegion(m, size, w, h, 2.0 / factor + 2.0);
  const x0 = onAreaGrid(r.x0, scaleX, gridTolerance), y0 = onAreaGrid(r.y0, scaleY, gridTolerance);
  const region = subImage(img, x0, y0, r.x1, r.y1);
  const small = resizeArea(region, roundHalfEven(region.width * scaleX), roundHalfEven(region.height * scaleY),
    [1 / scaleX, 1 / scaleY]);
  // shrunk pixel j's centre is image x = x0 + (j + 0.5) / scaleX - 0.5: m @ pre
  const pre = [1 / scaleX, 0, x0 + 0.5 / scaleX - 0.5, 0, 1 / scaleY, y0 + 0.5 / scaleY - 0.5];
  const mm = [
    m[0] * pre[0] + m[1] * pre[3], m[0] * pre[1] + m[1] * pre[4], m[0] * pre[2] + m[1] * pre[5] + m[2],
    m[3] * pre[0] + m[4] * pre[3], m[3] * pre[1] + m[4] * pre[4], m[3] * pre[2] + m[4] * pre[5] + m[5],
  ];
  return warpBilinear(small, mm, size);
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

// video.OneEuroFilter._alpha: the smoothing factor of a low-pass filter at `cutoff` Hz for a step of dt s.
function oneEuroAlpha(cutoff, dt) {
  const tau = 1.0 / (2 * Math.PI * cutoff);
  return 1.0 / (1.0 + tau / dt);
}

// video.FaceFilter.motion: centre x, centre y and spread (RMS distance from the centre) of the first
// `points` points of a flat x, y, x, y... signal.
function faceMotion(signal, points) {
  let cx = 0, cy = 0;
  for (let i = 0; i < points; i++) { cx += signal[2 * i]; cy += signal[2 * i + 1]; }
  cx /= points; cy /= points;
  let spread = 0;
  for (let i = 0; i < points; i++) spread += (signal[2 * i] - cx) ** 2 + (signal[2 * i + 1] - cy) ** 2;
  return [cx, cy, Math.sqrt(spread / points)];
}

function checkSmoothing({ min_cutoff, beta, d_cutoff }, fps) {
  if (![min_cutoff, beta, d_cutoff, fps].every(Number.isFinite) || !(min_cutoff > 0 && d_cutoff > 0 && beta >= 0 && fps > 0)) {
    throw new Error("smoothing needs min_cutoff, d_cutoff, fps > 0 and beta >= 0 (finite)");
  }
}

// video.FaceFilter: one face's landmarks and box One-Euro-filtered with one cutoff for the whole face, driven
// by the speed of its centre and spread, in units of its size at the first frame.
export class FaceFilter {
  constructor(smoothing, fps) {
    checkSmoothing(smoothing, fps);
    Object.assign(this, { options: smoothing, fps, scale: null, x: null, rate: [0, 0, 0], t: null });
  }

  apply(face, t = null) {
    const n = face.landmarks.length;
    if (this.scale === null) {
      const [x0, y0, x1, y1] = face.box;
      this.scale = Math.max(Math.sqrt(Math.max(x1 - x0, 1e-6) * Math.max(y1 - y0, 1e-6)), 1e-6);
    }
    const scale = this.scale;
    const signal = [...face.landmarks.flat(), ...face.box].map((v) => v / scale);
    if (this.x === null || this.x.length !== signal.length) {
      Object.assign(this, { x: signal, rate: [0, 0, 0], t });
      return { ...face, landmarks: face.landmarks.map((p) => p.slice()), box: face.box.slice() };
    }
    let dt = 1.0 / this.fps;
    if (t !== null && this.t !== null && t > this.t) dt = t - this.t;
    this.t = t;
    const now = faceMotion(signal, n), before = faceMotion(this.x, n);
    const ad = oneEuroAlpha(this.options.d_cutoff, dt);
    this.rate = this.rate.map((r, k) => r + ad * ((now[k] - before[k]) / dt - r));
    const speed = Math.sqrt(this.rate.reduce((acc, r) => acc + r * r, 0));
    const a = oneEuroAlpha(this.options.min_cutoff + this.options.beta * speed, dt);
    this.x = this.x.map((v, i) => v + a * (signal[i] - v));
    const smooth = this.x.map((v) => v * scale);
    const landmarks = [];
    for (let i = 0; i < 2 * n; i += 2) landmarks.push([smooth[i], smooth[i + 1]]);
    return { ...face, landmarks, box: smooth.slice(2 * n) };
  }
}

// ---------------------------------------------------------------------------------------------------
// Tracking (tracking.py): squares are [centre x, centre y, side] in image pixels
// ---------------------------------------------------------------------------------------------------

// crop.square_from_landmarks
export function squareFromLandmarks(points, margin) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of points) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  return [(x0 + x1) / 2, (y0 + y1) / 2, Math.max(x1 - x0, y1 - y0) * (1 + 2 * margin)];
}

// tracking.square_iou
export function squareIou([ax, ay, aside], [bx, by, bside]) {
  const w = Math.min(ax + aside / 2, bx + bside / 2) - Math.max(ax - aside / 2, bx - bside / 2);
  const h = Math.min(ay + aside / 2, by + bside / 2) - Math.max(ay - aside / 2, by - bside / 2);
  const inter = Math.max(w, 0.0) * Math.max(h, 0.0);
  const union = aside * aside + bside * bside - inter;
  return union > 0 ? inter / union : 0.0;
}

// tracking.box_for_square: the box that the calibration maps onto the square.
export function boxForSquare([cx, cy, side], cal) {
  const boxSide = side / cal.scale;
  const bx = cx - cal.dx * boxSide, by = cy - cal.dy * boxSide;
  return [bx - boxSide / 2, by - boxSide / 2, bx + boxSide / 2, by + boxSide / 2];
}

// tracking.crop_square: the image square a crop matrix samples.
export function cropSquare(m, size) {
  const [[x, y]] = toImage(m, [[(size - 1) / 2, (size - 1) / 2]]);
  return [x, y, size / m[0]];
}

// tracking._greedy_matches: detection index -> track index, best overlaps first (ties as Python's sort).
function greedyMatches(tracks, detections, minIou) {
  const pairs = [];
  tracks.forEach((t, j) => detections.forEach((d, i) => pairs.push([squareIou(t, d), j, i])));
  pairs.sort((a, b) => (b[0] - a[0]) || (b[1] - a[1]) || (b[2] - a[2]));
  const matched = new Map(), used = new Set();
  for (const [iou, j, i] of pairs) {
    if (iou >= minIou && !matched.has(i) && !used.has(j)) { matched.set(i, j); used.add(j); }
  }
  return matched;
}

// tracking.LandmarkTracker for one stream: the previous frame's landmarks give each face's next crop; the face
// detector runs when there is no track, when a track's quality is low, and at least every detect_every frames.
// `ops` runs the networks: detect(image) -> [{box, score}] (the detector's boxes, image pixels) and
// landmarks(image, matrices) -> [points in image pixels] (one network call for all crops). All parameters come
// from the model's runtime description (spec.tracking, spec.smoothing, spec.crop, spec.box_calibrations).
export class LandmarkTracker {
  constructor(spec, ops) {
    const t = spec.tracking;
    if (!(t.detect_every >= 1) || !["min_agreement", "match_iou"].every((k) => t[k] >= 0 && t[k] <= 1) || !(t.edge_reach >= 0)) {
      throw new Error("tracking: detect_every must be at least 1, min_agreement and match_iou in [0, 1], edge_reach >= 0");
    }
    if (spec.smoothing.filter !== "one-euro-face") throw new Error(`smoothing: unknown filter ${spec.smoothing.filter}`);
    this.fps = spec.smoothing.fps;
    checkSmoothing(t.crop_smoothing, this.fps);
    this.options = t;
    this.smoothing = spec.smoothing;
    checkSmoothing(this.smoothing, this.fps); // now, not at the first face
    this.ops = ops;
    this.size = spec.model.input_size;
    this.margin = spec.crop.margin;
    this.trackCal = spec.box_calibrations[t.box_source];
    this.detectorCal = spec.box_calibrations[spec.detector.name] || { dx: 0, dy: 0, scale: 1 };
    this.reset();
  }

  reset() {
    this.tracks = []; this.nextId = 0; this.sinceDetection = 0; this.frames = 0; this.detections = 0;
  }

  // The next RGB frame {data, width, height} at time t (seconds) -> {faces: [{track, face, raw}], detected,
  // detectorMs, landmarksMs}: each face smoothed (face) and not (raw), and whether the detector ran.
  async update(image, t) {
    this.frames += 1;
    const { width: w, height: h } = image;
    const predicted = this.tracks.map((tr) => tr.crop || tr.square);
    const boxes = predicted.map((sq) => boxForSquare(sq, this.trackCal));
    const matrices = boxes.map((b) => cropMatrix(...calibratedSquare(b, this.trackCal), this.size));
    let fresh = [];
    let detectorMs = 0;
    const detected = this.detectionDue();
    if (detected) {
      const t0 = performance.now();
      fresh = await this.detectNew(image, predicted);
      detectorMs = performance.now() - t0;
    }
    const t1 = performance.now();
    const points = await this.ops.landmarks(image, [...matrices, ...fresh.map((d) => d.matrix)]);
    const landmarksMs = performance.now() - t1;
    const out = [], kept = [];
    this.tracks.forEach((track, j) => {
      if (this.follow(track, predicted[j], { box: boxes[j], landmarks: points[j] }, t, w, h)) {
        kept.push(track);
        out.push([track, this.withBox(points[j], track)]);
      }
    });
    fresh.forEach((d, k) => {
      const pts = points[matrices.length + k];
      const track = { id: this.nextId++, square: squareFromLandmarks(pts, this.margin), score: d.score, crop: null,
        cropFilter: null, smoothed: null, unconfirmed: false, needsDetection: false, filter: null };
      track.crop = this.nextCrop(track, { box: d.box, landmarks: pts }, t, w, h);
      kept.push(track);
      out.push([track, this.withBox(pts, track)]);
    });
    this.tracks = kept;
    this.sinceDetection += 1;
    const faces = this.withoutDuplicates(out).map(([track, face]) => ({ track: track.id, raw: face, face: this.smooth(track, face, t) }));
    return { faces, detected, detectorMs, landmarksMs };
  }

  detectionDue() {
    return !this.tracks.length || this.sinceDetection >= this.options.detect_every
      || this.tracks.some((tr) => tr.needsDetection || tr.unconfirmed);
  }

  // Runs the face detector: marks the tracks it confirms (one unconfirmed twice ends) and returns the faces
  // no track follows, with their crop matrices.
  async detectNew(image, predicted) {
    const found = (await this.ops.detect(image)).map((d) => ({ ...d, matrix: cropMatrix(...calibratedSquare(d.box, this.detectorCal), this.size) }));
    this.detections += 1;
    this.sinceDetection = 0;
    const matches = greedyMatches(predicted, found.map((d) => cropSquare(d.matrix, this.size)), this.options.match_iou);
    const byTrack = new Map([...matches].map(([i, j]) => [j, i]));
    this.tracks.forEach((track, j) => {
      track.needsDetection = false;
      if (byTrack.has(j)) {
        track.unconfirmed = false;
        track.score = found[byTrack.get(j)].score;
      } else if (track.unconfirmed) {
        track.square = [NaN, NaN, NaN]; // ends in follow()
      } else {
        track.unconfirmed = true;
      }
    });
    return found.filter((d, i) => !matches.has(i));
  }

  // Moves the track to its face's new landmarks; false when the track ends.
  follow(track, cropSq, face, t, width, height) {
    if (!Number.isFinite(track.square[0])) return false;
    const points = face.landmarks;
    const square = squareFromLandmarks(points, this.margin);
    const [cx, cy, side] = square;
    const reach = this.options.edge_reach * side; // a face half out of the frame is still followed
    if (!(cx >= -reach && cx < width + reach && cy >= -reach && cy < height + reach) || !(side > 0)
      || !points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y))) return false;
    track.needsDetection = track.needsDetection || squareIou(square, cropSq) < this.options.min_agreement;
    track.crop = this.nextCrop(track, face, t, width, height);
    track.square = square;
    return true;
  }

  // The crop for the next frame: the square around the track's landmarks filtered (crop_smoothing), moved on
  // by their last motion, its centre kept inside the frame.
  nextCrop(track, face, t, width, height) {
    if (!track.cropFilter) track.cropFilter = new FaceFilter(this.options.crop_smoothing, this.fps);
    const square = squareFromLandmarks(track.cropFilter.apply(face, t).landmarks, this.margin);
    const last = track.smoothed;
    track.smoothed = square;
    let [cx, cy] = square;
    if (last) [cx, cy] = [cx + cx - last[0], cy + cy - last[1]];
    return [Math.min(Math.max(cx, 0.0), width - 1.0), Math.min(Math.max(cy, 0.0), height - 1.0),
      Math.min(square[2], 2.0 * Math.max(width, height))];
  }

  // The face with a box of the detector's convention around its landmarks.
  withBox(landmarks, track) {
    return { box: boxForSquare(track.square, this.detectorCal), score: track.score, landmarks };
  }

  // Two tracks that converged on one face: the older one stays.
  withoutDuplicates(faces) {
    const out = [];
    for (const [track, face] of [...faces].sort((a, b) => a[0].id - b[0].id)) {
      if (out.every(([other]) => squareIou(track.square, other.square) < 0.5)) out.push([track, face]);
    }
    this.tracks = out.map(([track]) => track);
    return out;
  }

  smooth(track, face, t) {
    if (!track.filter) track.filter = new FaceFilter(this.smoothing, this.fps);
    return track.filter.apply(face, t);
  }
}
