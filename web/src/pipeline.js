// The numerical pipeline of kdlandmarks.LandmarkDetector (backend onnx, detector retinaface), without the DOM
// or onnxruntime: images are {data: Uint8Array RGB, width, height}. Every parameter comes from the model's
// runtime description (the JSON beside the ONNX file, written by kdlandmarks.modelspec), so the numbers
// are those of the Python package:
//   - resizes: OpenCV's INTER_AREA (cv2.resize), the general path and the 2x2 fast path;
//   - crops: crop.CropTransform (pixel centres, area pre-shrink, bilinear, replicated border, turned by the
//     face's roll);
//   - RetinaFace: detection.RetinaFaceDetector (anchors, variances, NMS, thresholds, shrinking);
//   - photos: LandmarkDetector._face_windows (rolled faces found again on a patch turned upright; crops turned
//     by the eye keypoints' roll past roll_threshold, then refined on the landmarks);
//   - video: tracking.LandmarkTracker (crops from the last landmarks, turned with the face's roll; the detector
//     only to find new or lost faces) and video.FaceFilter (One-Euro filter per track).

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

// crop.BoxCalibration.square: the crop square of a box; for a face rolled by `angle`, the shift turns with it.
export function calibratedSquare(box, cal, angle = 0) {
  const [x0, y0, x1, y1] = box;
  const side = Math.sqrt(Math.max(x1 - x0, 1e-6) * Math.max(y1 - y0, 1e-6));
  const c = Math.cos(angle), s = Math.sin(angle);
  const shiftX = (c * cal.dx - s * cal.dy) * side, shiftY = (s * cal.dx + c * cal.dy) * side;
  return [(x0 + x1) / 2 + shiftX, (y0 + y1) / 2 + shiftY, cal.scale * side];
}

// crop.CropTransform.from_square: the (2, 3) map from image pixel centres to crop pixel centres, turned by
// `angle` (the face's roll): crop = size / side * R(-angle) (p - centre) + (size - 1) / 2.
export function cropMatrix(cx, cy, side, size, angle = 0) {
  if (![cx, cy, side, angle].every(Number.isFinite) || side <= 0) {
    throw new Error(`invalid crop window centre=(${cx}, ${cy}) side=${side}`);
  }
  const s = size / side, c = Math.cos(angle) * s, si = Math.sin(angle) * s, shift = (size - 1) / 2;
  return [c, si, shift - c * cx - si * cy, -si, c, shift + si * cx - c * cy];
}

// crop.CropTransform.scale and .angle: crop pixels per image pixel, and the roll the crop turns away.
export const matrixScale = (m) => Math.hypot(m[0], m[3]);
export const matrixAngle = (m) => Math.atan2(m[1], m[0]);

// crop.roll_angle: the roll (radians, y down) of a face whose eye on the image's left is at `left`.
export const rollAngle = (left, right) => Math.atan2(right[1] - left[1], right[0] - left[0]);

// crop.gt_crop: the crop matrix of the square around landmarks (with the margin), turned by `angle`.
export function landmarkCrop(points, size, margin, angle = 0) {
  const [cx, cy, side] = squareFromLandmarks(points, margin, angle);
  return cropMatrix(cx, cy, side, size, angle);
}

// crop.CropTransform.warp: the size x size RGB crop of `img`. A shrinking crop is area-filtered first, on
// the region it reads only, starting within `gridTolerance` (the spec's crop.area_grid_tolerance) of a bin
// edge of shrinking the whole image (cv2.resize with fx, fy).
export function warpCrop(img, m, size, gridTolerance) {
  const { width: w, height: h } = img;
  const factor = matrixScale(m);
  if (factor >= 1.0) return warpBilinear(img, m, size);
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

// LandmarkDetector._detect_faces: the image the detector runs on (shrunk to detect_max_side, or to `maxSide`
// when that is smaller: a tracker's quick scan) and how to map its boxes back.
export function detectionImage(img, det, maxSide = null) {
  const { width: w, height: h } = img;
  const limits = [det.detect_max_side, maxSide].filter((v) => v);
  const limit = limits.length ? Math.min(...limits) : null;
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

// np.rot90(image, turns): the RGB image turned by `turns` counter-clockwise quarter turns (exact).
export function rot90(img, turns) {
  const { data, width: w, height: h } = img;
  const k = ((turns % 4) + 4) % 4;
  if (k === 0) return img;
  const [ow, oh] = k === 2 ? [w, h] : [h, w];
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const [sx, sy] = k === 1 ? [w - 1 - y, x] : k === 2 ? [w - 1 - x, h - 1 - y] : [y, h - 1 - x];
      const o = (y * ow + x) * 3, i = (sy * w + sx) * 3;
      out[o] = data[i]; out[o + 1] = data[i + 1]; out[o + 2] = data[i + 2];
    }
  }
  return { data: out, width: ow, height: oh };
}

// detection.rotations.turned_back: a point of rot90(image, turns) -> the same point of the w x h image.
export function turnedBack([x, y], turns, w, h) {
  const k = ((turns % 4) + 4) % 4;
  return k === 1 ? [w - 1 - y, x] : k === 2 ? [w - 1 - x, h - 1 - y] : k === 3 ? [y, h - 1 - x] : [x, y];
}

// detection.rotations.turned_detection_back: a detection made on rot90(image, turns), in the w x h image.
function turnedDetectionBack(d, turns, w, h) {
  const a = turnedBack([d.box[0], d.box[1]], turns, w, h), b = turnedBack([d.box[2], d.box[3]], turns, w, h);
  const box = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  return { box, score: d.score, keypoints: d.keypoints && d.keypoints.map((p) => turnedBack(p, turns, w, h)) };
}

// ---------------------------------------------------------------------------------------------------
// Photos: LandmarkDetector._face_windows (spec.roll: its roll_threshold, roll_passes, ROLL_SETTLED)
// ---------------------------------------------------------------------------------------------------

// LandmarkDetector._eye_roll: the roll of a detection's eye keypoints; null without them or when never turning.
function eyeRoll(roll, d) {
  if (roll.threshold === null || !d.keypoints || d.keypoints.length < 2) return null;
  return rollAngle(d.keypoints[roll.keypoint_eyes[0]], d.keypoints[roll.keypoint_eyes[1]]);
}

// detection.rotations.keypoint_roll: the roll of a detection's two eye keypoints; null without them.
function keypointRoll(d) {
  return d.keypoints && d.keypoints.length >= 2 ? rollAngle(d.keypoints[0], d.keypoints[1]) : null;
}

// detection.rotations.bunched: whether a detection's eye keypoints sit closer than `spread` box sides (a rolled
// face's keypoints misread, never an upright face's).
function bunched(d, spread) {
  if (!d.keypoints || d.keypoints.length < 2) return false;
  const [x0, y0, x1, y1] = d.box, [a, b] = d.keypoints;
  const side = Math.sqrt(Math.max(x1 - x0, 1e-6) * Math.max(y1 - y0, 1e-6));
  return Math.hypot(b[0] - a[0], b[1] - a[1]) < spread * side;
}

// detection.rotations.patch_transform: the crop matrix of the patch around a detection's box turned by `angle`.
function patchMatrix(d, angle, patch) {
  const [x0, y0, x1, y1] = d.box;
  const side = Math.sqrt(Math.max(x1 - x0, 1e-6) * Math.max(y1 - y0, 1e-6));
  return cropMatrix((x0 + x1) / 2, (y0 + y1) / 2, patch.context * side, patch.size, angle);
}

// detection.rotations.patch_detection_back: a detection made on a patch (matrix m) in the image: keypoints mapped
// exactly, the box its mapped centre with its size in the face's own frame.
function patchDetectionBack(d, m) {
  const [[cx, cy]] = toImage(m, [[(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2]]);
  const s = matrixScale(m), hx = (d.box[2] - d.box[0]) / 2 / s, hy = (d.box[3] - d.box[1]) / 2 / s;
  return { box: [cx - hx, cy - hy, cx + hx, cy + hy], score: d.score, keypoints: d.keypoints && toImage(m, d.keypoints) };
}

const remainder = (x, y) => x - y * roundHalfEven(x / y); // math.remainder

// detection.rotations._patch_face: the detector's unbunched face nearest the centre of the patch of matrix `m`
// (within patch.reach of its side), in patch pixels; null when there is none.
async function patchFace(spec, ops, image, m, patch) {
  const cut = { data: warpCrop(image, m, patch.size, spec.crop.area_grid_tolerance), width: patch.size, height: patch.size };
  const centre = (patch.size - 1) / 2;
  let found = null, reach = patch.reach * patch.size;
  for (const f of await ops.faces(cut)) {
    const dist = Math.hypot((f.box[0] + f.box[2]) / 2 - centre, (f.box[1] + f.box[3]) / 2 - centre);
    if (dist <= reach && keypointRoll(f) !== null && !bunched(f, patch.spread)) [found, reach] = [f, dist];
  }
  return found;
}

// detection.rotations.upright_detection: a face rolled by about `roll` found again where the detector reads it
// upright, mapped back into the image; null when it is not within patch.tries detector runs. The first patch is
// turned by `roll`; a face read still rolled sends the next patch after that reading, no face (or bunched
// keypoints) to the next untried quarter turn of `roll`. An upright reading that fails `check` (the mapped-back
// detection -> Promise<bool>) sends the search to its own patch's half turn, then its quarter turns.
async function uprightDetection(spec, ops, image, d, roll, check) {
  const patch = spec.roll.upright_patch;
  const tried = [];
  let turns = [1, -1, 2].map((k) => roll + k * Math.PI / 2);
  let angle = roll;
  for (let i = 0; i < patch.tries; i++) {
    tried.push(angle);
    const m = patchMatrix(d, angle, patch);
    const found = await patchFace(spec, ops, image, m, patch);
    const seen = found === null ? null : keypointRoll(found);
    let follow = [];
    if (found !== null && Math.abs(seen) <= patch.upright && found.score >= patch.confident) {
      const back = patchDetectionBack(found, m);
      if (await check(back)) return back;
      turns = [2, 1, -1].map((k) => angle + k * Math.PI / 2);
    } else if (seen !== null && Math.abs(seen) > patch.upright) {
      follow = [angle + seen];
    }
    const nexts = [...follow, ...turns]
      .filter((a) => tried.every((t) => Math.abs(remainder(a - t, 2 * Math.PI)) > patch.upright));
    if (!nexts.length) return null;
    angle = nexts[0];
  }
  return null;
}

// LandmarkDetector._network_agrees: whether the landmark network, on the crop detection `d` gives (turned by its
// keypoints' roll; `cal`: the detector's box calibration), puts the eye centres (the mean of each roll.pupils
// group), nose tip and mouth corners (roll.keypoint_landmarks) within upright_patch.agree eye distances of the
// detector's keypoints, on average. One network run of one crop.
async function networkAgrees(spec, ops, image, d, cal) {
  const { pupils, keypoint_landmarks: named, upright_patch: patch } = spec.roll;
  const r = eyeRoll(spec.roll, d), size = spec.model.input_size;
  const [pts] = await ops.landmarks(image, [cropMatrix(...calibratedSquare(d.box, cal, r), size, r)]);
  const mean = (group) => [0, 1].map((k) => group.reduce((acc, i) => acc + pts[i][k], 0) / group.length);
  const points = [...pupils.map(mean), ...named.map((i) => pts[i])];
  const kps = d.keypoints, n = Math.min(points.length, kps.length); // a detector with fewer keypoints: those it has
  let gap = 0;
  for (let i = 0; i < n; i++) gap += Math.hypot(points[i][0] - kps[i][0], points[i][1] - kps[i][1]);
  const [a, b] = spec.roll.keypoint_eyes.map((i) => kps[i]);
  return gap / n <= patch.agree * Math.hypot(b[0] - a[0], b[1] - a[1]);
}

// detection.rotations.needs_upright_patch: whether a detection's keypoints are to be checked on an upright patch
// (rolled past patch.rolled, or past the roll threshold with a score under patch.doubtful, or bunched; or a box
// squatter than patch.squat, or a score under patch.unsure).
function needsUprightPatch(d, threshold, patch) {
  const r = keypointRoll(d);
  if (r === null) return false;
  const [x0, y0, x1, y1] = d.box;
  if (bunched(d, patch.spread) || (y1 - y0) < patch.squat * (x1 - x0) || d.score < patch.unsure) return true;
  return Math.abs(r) > patch.rolled || (Math.abs(r) > threshold && d.score < patch.doubtful);
}

// LandmarkDetector._upright_redetected: a face whose keypoints say it is rolled far, or rolled with a low score,
// or are bunched, or whose box is squat, found again on a small patch around it turned upright, where the landmark
// network agrees with the detector's keypoints (networkAgrees); `d` itself when it needs no check, is not found
// upright, or is an unrolled face confirmed unrolled. `cal`: the detector's box calibration.
async function uprightRedetected(spec, ops, image, d, cal) {
  const { threshold, upright_patch: patch } = spec.roll;
  if (threshold === null || !patch || !needsUprightPatch(d, threshold, patch)) return d;
  const roll = eyeRoll(spec.roll, d);
  const found = await uprightDetection(spec, ops, image, d, roll, (back) => networkAgrees(spec, ops, image, back, cal));
  if (found === null || (Math.abs(roll) <= threshold && Math.abs(eyeRoll(spec.roll, found)) <= threshold
    && !bunched(d, patch.spread))) return d;
  return found;
}

// LandmarkDetector._turned_upright: rolled faces' crop matrices refined in place. The keypoints' roll is rough:
// the network runs on the crop turned by it, and the next crop is the landmark crop of that prediction turned by
// its own eye corners' roll, for at most roll.passes passes, until the crop's roll is within roll.settled.
async function turnedUpright(spec, ops, image, faces, timing) {
  const { eyes: [left, right], passes, settled } = spec.roll;
  let rolled = faces;
  for (let pass = 0; pass < passes && rolled.length; pass++) {
    const points = await ops.landmarks(image, rolled.map((f) => f.matrix), timing);
    const unsettled = [];
    rolled.forEach((f, k) => {
      const r = rollAngle(points[k][left], points[k][right]);
      const off = r - matrixAngle(f.matrix);
      if (Math.abs(remainder(off, 2 * Math.PI)) > settled) unsettled.push(f);
      f.matrix = landmarkCrop(points[k], spec.model.input_size, spec.crop.margin, r);
    });
    rolled = unsettled;
  }
}

// LandmarkDetector._face_windows for the face detector's faces (`maxSide`: a smaller copy for the detector,
// see detectionImage): [{box, score, matrix}], each crop turned by its eye keypoints' roll past
// roll.threshold and refined. `ops`: see networkOps. `timing` (optional) gets detectorMs (detection and
// upright re-detection) and the crop and network ms of the refinement.
export async function faceWindows(spec, ops, image, maxSide = null, timing = {}) {
  const t0 = performance.now();
  const cal = spec.box_calibrations[spec.detector.name] || { dx: 0, dy: 0, scale: 1 };
  const faces = [];
  for (const found of await ops.detect(image, maxSide)) {
    const d = await uprightRedetected(spec, ops, image, found, cal);
    const r = eyeRoll(spec.roll, d);
    const angle = r !== null && Math.abs(r) > spec.roll.threshold ? r : 0;
    faces.push({ box: d.box, score: found.score, angle,
      matrix: cropMatrix(...calibratedSquare(d.box, cal, angle), spec.model.input_size, angle) });
  }
  timing.detectorMs = performance.now() - t0;
  await turnedUpright(spec, ops, image, faces.filter((f) => f.angle !== 0), timing);
  return faces.map(({ box, score, matrix }) => ({ box, score, matrix }));
}

// detection.rotations.RotationSearch (LandmarkDetector.search_rotations) after an upright image held no face:
// the faces of the quarter turn (in `turns` order) whose best face scores highest, mapped back.
async function rotationSearch(run, img, turns) {
  let best = [], bestTurns = 0;
  const top = (faces) => Math.max(...faces.map((d) => d.score));
  for (const k of turns) {
    const found = await run(rot90(img, k));
    if (found.length && (!best.length || top(found) > top(best))) [best, bestTurns] = [found, k];
  }
  return best.map((d) => turnedDetectionBack(d, bestTurns, img.width, img.height));
}

// The networks behind faceWindows and LandmarkTracker, on onnxruntime(-web) sessions {detector, landmarker}
// (`Tensor`: ort.Tensor): detect(image, maxSide) -> [{box, score, keypoints}] in image pixels
// (LandmarkDetector._detect_faces), faces(image) -> the same from the face detector alone (RetinaFaceDetector.detect:
// no shrink to detect_max_side, no rotation search), and landmarks(image, matrices, timing) -> the landmarks (image pixels) of
// those crops in one network call (`timing`, optional, gets the crop and network ms).
export function networkOps(spec, sessions, Tensor) {
  const clock = () => performance.now();
  const det = spec.detector;
  async function retinaface(img) { // RetinaFaceDetector.detect
    const input = detectorInput(img, det);
    const tensor = new Tensor("float32", detectorTensor(input.image, det), [1, 3, input.image.height, input.image.width]);
    const out = await sessions.detector.run({ [det.input]: tensor });
    const [loc, conf, landm] = det.outputs.map((name) => out[name].data);
    return decodeRetinaface(loc, conf, landm, input.image.width, input.image.height, input.scale, img.width, img.height, det);
  }
  async function detect(image, maxSide = null) {
    const shrunk = detectionImage(image, det, maxSide);
    let dets = await retinaface(shrunk.image);
    if (!dets.length && spec.roll.search_turns.length) dets = await rotationSearch(retinaface, shrunk.image, spec.roll.search_turns);
    return shrunk.shrunk ? dets.map((d) => unshrinkDetection(d, shrunk.sx, shrunk.sy)) : dets;
  }
  async function landmarks(image, matrices, timing = {}) {
    const size = spec.model.input_size;
    if (!matrices.length) return [];
    const t0 = clock();
    const crops = matrices.map((m) => warpCrop(image, m, size, spec.crop.area_grid_tolerance));
    const x = new Tensor("float32", cropsToTensor(crops, size, spec.input), [crops.length, 3, size, size]);
    const t1 = clock();
    const y = (await sessions.landmarker.run({ [spec.model.input]: x }))[spec.model.output].data;
    timing.cropMs = (timing.cropMs || 0) + t1 - t0;
    timing.networkMs = (timing.networkMs || 0) + clock() - t1;
    const n = spec.model.num_points;
    return matrices.map((m, i) => toImage(m, decodeLandmarks(y, i * 2 * n, n, size, spec.codec.space)));
  }
  return { detect, faces: retinaface, landmarks };
}

// LandmarkDetector.detect on a photo: its faces [{box, score, landmarks}]. `timing` (optional) gets detectorMs
// (detection, upright re-detection), landmarksMs (refinement and final passes: crops, network, decoding) and
// within it cropMs and networkMs.
export async function detectPhoto(spec, ops, image, timing = {}) {
  const t0 = performance.now();
  const windows = await faceWindows(spec, ops, image, null, timing);
  const points = await ops.landmarks(image, windows.map((w) => w.matrix), timing);
  timing.landmarksMs = performance.now() - t0 - timing.detectorMs;
  return windows.map((w, i) => ({ box: w.box, score: w.score, landmarks: points[i] }));
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

// crop.square_from_landmarks: with `angle`, the extent is taken in the frame turned by the face's roll.
export function squareFromLandmarks(points, margin, angle = 0) {
  const c = Math.cos(angle), s = Math.sin(angle);
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [px, py] of points) {
    const [x, y] = angle === 0 ? [px, py] : [px * c + py * s, -px * s + py * c]; // turned by -angle
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const mx = (x0 + x1) / 2, my = (y0 + y1) / 2, side = Math.max(x1 - x0, y1 - y0) * (1 + 2 * margin);
  return angle === 0 ? [mx, my, side] : [c * mx - s * my, s * mx + c * my, side];
}

// tracking.square_iou
export function squareIou([ax, ay, aside], [bx, by, bside]) {
  const w = Math.min(ax + aside / 2, bx + bside / 2) - Math.max(ax - aside / 2, bx - bside / 2);
  const h = Math.min(ay + aside / 2, by + bside / 2) - Math.max(ay - aside / 2, by - bside / 2);
  const inter = Math.max(w, 0.0) * Math.max(h, 0.0);
  const union = aside * aside + bside * bside - inter;
  return union > 0 ? inter / union : 0.0;
}

// tracking.box_for_square: the box that the calibration maps onto the square for a face rolled by `angle`.
export function boxForSquare([cx, cy, side], cal, angle = 0) {
  const boxSide = side / cal.scale;
  const c = Math.cos(angle), s = Math.sin(angle);
  const bx = cx - (c * cal.dx - s * cal.dy) * boxSide, by = cy - (s * cal.dx + c * cal.dy) * boxSide;
  return [bx - boxSide / 2, by - boxSide / 2, bx + boxSide / 2, by + boxSide / 2];
}

// tracking.crop_square: the image square a crop matrix samples (centre and side, before its turn).
export function cropSquare(m, size) {
  const [[x, y]] = toImage(m, [[(size - 1) / 2, (size - 1) / 2]]);
  return [x, y, size / matrixScale(m)];
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

// tracking.LandmarkTracker for one stream: the previous frame's landmarks give each face's next crop, turned with
// the face's roll; the face detector runs when there is no track, when a track's quality is low, and at least every
// detect_every frames (that periodic scan on a copy shrunk to scan_max_side while every track is healthy).
// `ops` runs the networks (see networkOps): detect(image, maxSide) -> [{box, score, keypoints}] (the detector's
// faces, image pixels) and landmarks(image, matrices) -> [points in image pixels] (one network call for all crops).
// All parameters come from the model's runtime description (spec.tracking, spec.smoothing, spec.crop, spec.roll,
// spec.box_calibrations).
export class LandmarkTracker {
  constructor(spec, ops) {
    const t = spec.tracking;
    if (!(t.detect_every >= 1) || !["min_agreement", "match_iou"].every((k) => t[k] >= 0 && t[k] <= 1) || !(t.edge_reach >= 0)
      || !(t.scan_max_side === null || t.scan_max_side >= 32) || !(t.roll_hysteresis >= 0)) {
      throw new Error("tracking: detect_every must be at least 1, min_agreement and match_iou in [0, 1], edge_reach and "
        + "roll_hysteresis >= 0, scan_max_side at least 32 or null");
    }
    if (spec.smoothing.filter !== "one-euro-face") throw new Error(`smoothing: unknown filter ${spec.smoothing.filter}`);
    const r = spec.roll;
    if (!r || !(r.threshold === null || r.threshold >= 0) || !(r.passes >= 0) || !(r.settled >= 0) || r.eyes.length !== 2) {
      throw new Error("roll: the model description needs roll.threshold (>= 0 or null), passes, settled and eyes "
        + "(kdlandmarks web --write-spec MODEL writes it)");
    }
    this.fps = spec.smoothing.fps;
    checkSmoothing(t.crop_smoothing, this.fps);
    this.options = t;
    this.smoothing = spec.smoothing;
    checkSmoothing(this.smoothing, this.fps); // now, not at the first face
    this.spec = spec;
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
    const matrices = this.tracks.map((tr, j) => this.window(predicted[j], tr.roll));
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
      const [cx, cy, side] = cropSquare(matrices[j], this.size);
      const box = [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]; // LandmarkDetector.crop_windows
      if (this.follow(track, predicted[j], { box, landmarks: points[j] }, t, w, h)) {
        kept.push(track);
        out.push([track, this.withBox(points[j], track)]);
      }
    });
    fresh.forEach((d, k) => {
      const pts = points[matrices.length + k];
      const track = { id: this.nextId++, square: [NaN, NaN, NaN], score: d.score, roll: matrixAngle(d.matrix), crop: null,
        cropFilter: null, smoothed: null, unconfirmed: false, needsDetection: false, filter: null };
      this.move(track, { box: d.box, landmarks: pts }, t, w, h);
      kept.push(track);
      out.push([track, this.withBox(pts, track)]);
    });
    this.tracks = kept;
    this.sinceDetection += 1;
    const faces = this.withoutDuplicates(out).map(([track, face]) => ({ track: track.id, raw: face, face: this.smooth(track, face, t) }));
    return { faces, detected, detectorMs, landmarksMs };
  }

  // A track's crop matrix: its square turned by its roll, through the box crop_faces would cut (tracking._window).
  window(square, roll) {
    const box = boxForSquare(square, this.trackCal, roll);
    return cropMatrix(...calibratedSquare(box, this.trackCal, roll), this.size, roll);
  }

  detectionDue() {
    return !this.tracks.length || this.sinceDetection >= this.options.detect_every || this.doubtful();
  }

  // Whether a track was lost, moved past its crop, or went unconfirmed: detect at full size.
  doubtful() {
    return this.tracks.some((tr) => tr.needsDetection || tr.unconfirmed);
  }

  // Runs the face detector (faceWindows, as detect() crops and turns its faces): marks the tracks it confirms
  // (one unconfirmed twice ends) and returns the faces no track follows, with their crop matrices.
  async detectNew(image, predicted) {
    const scan = this.tracks.length && !this.doubtful();
    const found = await faceWindows(this.spec, this.ops, image, scan ? this.options.scan_max_side : null);
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
    const square = squareFromLandmarks(points, this.margin, track.roll); // at the crop's roll
    const [cx, cy, side] = square;
    const reach = this.options.edge_reach * side; // a face half out of the frame is still followed
    if (!(cx >= -reach && cx < width + reach && cy >= -reach && cy < height + reach) || !(side > 0)
      || !points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y))) return false;
    track.needsDetection = track.needsDetection || squareIou(square, cropSq) < this.options.min_agreement;
    this.move(track, face, t, width, height, square);
    return true;
  }

  // Gives the track its face's next crop and roll, and its square (`square`, measured at the old roll, when
  // the roll stays).
  move(track, face, t, width, height, square = null) {
    const roll = track.roll;
    track.crop = this.nextCrop(track, face, t, width, height);
    track.square = square === null || track.roll !== roll ? squareFromLandmarks(face.landmarks, this.margin, track.roll) : square;
  }

  // The roll of a track's next crop: its eye corners' roll once past roll.threshold (a turned crop, roll != 0,
  // until it falls tracking.roll_hysteresis below it), else 0.
  turn(landmarks, roll) {
    const { threshold, eyes: [left, right] } = this.spec.roll;
    if (threshold === null) return 0;
    const now = rollAngle(landmarks[left], landmarks[right]);
    const limit = threshold - (roll !== 0 ? this.options.roll_hysteresis : 0);
    return Math.abs(now) > limit ? now : 0;
  }

  // The crop for the next frame: the square around the track's landmarks filtered (crop_smoothing), turned by
  // their roll (track.roll, updated here), moved on by their last motion, its centre kept inside the frame.
  nextCrop(track, face, t, width, height) {
    if (!track.cropFilter) track.cropFilter = new FaceFilter(this.options.crop_smoothing, this.fps);
    const landmarks = track.cropFilter.apply(face, t).landmarks;
    track.roll = this.turn(landmarks, track.roll);
    const square = squareFromLandmarks(landmarks, this.margin, track.roll);
    const last = track.smoothed;
    track.smoothed = square;
    let [cx, cy] = square;
    if (last) [cx, cy] = [cx + cx - last[0], cy + cy - last[1]];
    return [Math.min(Math.max(cx, 0.0), width - 1.0), Math.min(Math.max(cy, 0.0), height - 1.0),
      Math.min(square[2], 2.0 * Math.max(width, height))];
  }

  // The face with a box of the detector's convention around its landmarks (turned with a rolled face's crop).
  withBox(landmarks, track) {
    return { box: boxForSquare(track.square, this.detectorCal, track.roll), score: track.score, landmarks };
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
