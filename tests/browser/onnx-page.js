// Runs in headless Chromium: SmolLM2 exported to ONNX in a Web Worker and run on WebGPU
// (SwiftShader when the browser has --enable-unsafe-webgpu), through WorkerEngine.
import { WorkerEngine } from '/engine/index.js';

const question = [
  { role: 'system', content: 'You are a concise assistant. Answer in one sentence.' },
  { role: 'user', content: 'What is the capital of France?' },
];

async function fetchBytes(url) {
  return (await fetch(url)).arrayBuffer();
}

window.runOnnxTest = async (modelUrl) => {
  const engine = new WorkerEngine();
  const report = {};
  try {
    report.info = await engine.load(await fetchBytes(modelUrl), { transfer: true, backend: 'webgpu', export: { context: 128 } });
    const pieces = [];
    report.result = await engine.generate({ messages: question, maxNewTokens: 12 }, (p) => pieces.push(p));
    report.pieces = pieces;
    report.after = await engine.info();
    // The same question on the CPU backend in the same worker: the GGUF path is untouched.
    report.cpu = await engine.load(await fetchBytes(modelUrl), { transfer: true });
    report.cpuResult = await engine.generate({ messages: question, maxNewTokens: 12 });
  } catch (e) {
    report.error = { name: e.name, code: e.code, message: e.message };
  }
  engine.terminate();
  return report;
};

window.runNoWebGpuTest = async (modelUrl) => {
  const engine = new WorkerEngine();
  const report = { hasGpu: !!navigator.gpu };
  try {
    await engine.load(await fetchBytes(modelUrl), { transfer: true, backend: 'webgpu' });
  } catch (e) {
    report.refused = { name: e.name, code: e.code, message: e.message };
  }
  await engine.load(await fetchBytes(modelUrl), { transfer: true });
  report.cpuResult = await engine.generate({ messages: question, maxNewTokens: 12 });
  engine.terminate();
  return report;
};

// The ONNX sentence embedder on WebGPU, in the worker: its vectors against the onnxruntime
// reference, then as the embedder of a dense retrieval over three small documents.
window.runOnnxEmbedderTest = async (dir, sentences) => {
  const { DocumentIndex } = await import('/rag/index.js');
  const { indexDocuments } = await import('/rag/pipeline.js');
  const { retrieve } = await import('/rag/retrieve.js');
  const engine = new WorkerEngine();
  const report = {};
  try {
    const files = {
      onnx: new Uint8Array(await fetchBytes(`${dir}/paraphrase-MiniLM-L3-v2.onnx`)),
      tokenizer: new Uint8Array(await fetchBytes(`${dir}/tokenizer.json`)),
    };
    report.loaded = await engine.loadEmbedder(files, { seqLen: 128 });
    report.vectors = (await engine.embed(sentences)).map((v) => Array.from(v));
    const embed = (texts) => engine.embed(texts);
    const index = new DocumentIndex();
    await indexDocuments(index, [
      { name: 'turbine.txt', text: 'The tidal turbine converts the energy of moving sea water into electricity.' },
      { name: 'bread.txt', text: 'Knead the dough, let it rise for an hour, then bake the loaf until golden.' },
      { name: 'tax.txt', text: 'Income tax returns must be filed with the revenue office before the deadline.' },
    ], embed);
    const r = await retrieve({ index, query: 'How is electricity generated from ocean currents?', embed, mode: 'dense', topKFinal: 1 });
    report.top = r.passages[0].source;
  } catch (e) {
    report.error = { name: e.name, code: e.code, message: e.message };
  }
  engine.terminate();
  return report;
};
