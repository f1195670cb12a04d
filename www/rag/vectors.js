// Embedding vectors (Float32Array, unit length): their similarity, and base64 of their float32
// bytes, how they are stored in JSON (the document index, the answer cache), about 2.5× smaller
// than number arrays. Bytes are in the platform's order, little-endian on every browser and Node
// target edgellm runs on. btoa/atob exist in browsers and in Node ≥ 16, so this runs in both without Buffer.

/** Cosine similarity of two unit vectors of the same length. */
export function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

export function floatsToBase64(vector) {
  const bytes = new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
  let binary = '';
  const STEP = 0x8000; // String.fromCharCode takes its bytes as arguments; stay far below the argument limit.
  for (let i = 0; i < bytes.length; i += STEP) binary += String.fromCharCode(...bytes.subarray(i, i + STEP));
  return btoa(binary);
}

/** Throws (atob's DOMException, or a RangeError) on text that is not base64 of whole float32s. */
export function base64ToFloats(base64) {
  const binary = atob(base64);
  if (binary.length % 4 !== 0) throw new RangeError(`base64ToFloats: ${binary.length} bytes is not a whole number of float32s`);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}
