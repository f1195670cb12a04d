// A cited conversation through www/rag/answer.js, the module the page and the answer-quality
// command answer with: the conversation rules (pure), the quality measures, and three real turns
// with SmolLM2 and MiniLM in wasm over the sample corpus.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Engine, Embedder, loadTokenizer } from '../../www/engine/index.js';
import { DocumentIndex } from '../../www/rag/index.js';
import { indexDocuments, sampleCorpus } from '../../www/rag/pipeline.js';
import { answerQuestion, Conversation, CONVERSATION_RULES, isFollowUp, REGENERATION } from '../../www/rag/answer.js';
import { containsGold, loops, repeatedRunShare, scoreTurn } from '../../www/bench/quality.js';
import { answerPreset } from '../../www/app/storage.js';
import { buildMessages, EXAMPLE_EXCHANGE, SYSTEM_PROMPT } from '../../www/rag/prompt.js';

test('isFollowUp: questions that lean on the previous one, and ones that stand alone', () => {
  for (const q of ['And what about its cost?', 'What is it used for?', 'Why?', 'How did they measure that?', 'Tell me more.', 'What temperature was it cooled to?']) {
    assert.equal(isFollowUp(q), true, q);
  }
  for (const q of ['How does climate change impact engineering design?', 'What is life cycle assessment?',
    'What are the three dimensions of sustainability and how do they relate to engineering ethics and design?']) {
    assert.equal(isFollowUp(q), false, q);
  }
});

test('Conversation rules: what a new question gets from the earlier turns', () => {
  const turn = (question, topic = question) => ({ question, topic, text: 'An answer [1].' });
  const ask = (rule, turns, question) => {
    const c = new Conversation({ rule });
    turns.forEach((t) => c.record(t));
    return c.contextFor(question);
  };
  const earlier = [turn('What is life cycle assessment?')];
  assert.deepEqual(ask('current-question', earlier, 'What is it used for?'), { retrievalQuery: 'What is it used for?', history: [], followUpOf: undefined, followUp: false });
  assert.deepEqual(ask('follow-up', earlier, 'What is it used for?'),
    { retrievalQuery: 'What is life cycle assessment? What is it used for?', history: [], followUpOf: 'What is life cycle assessment?', followUp: true });
  // A new topic starts afresh under the follow-up rule…
  assert.equal(ask('follow-up', earlier, 'How does climate change impact engineering design?').followUp, false);
  // …but not under previous-question, which always carries the last question along.
  assert.equal(ask('previous-question', earlier, 'How does climate change impact engineering design?').followUpOf, 'What is life cycle assessment?');
  // A chain of follow-ups is searched with the question that opened its topic.
  const chain = [turn('What is life cycle assessment?'), turn('What is it used for?', 'What is life cycle assessment?')];
  assert.equal(ask('follow-up', chain, 'And its stages?').retrievalQuery, 'What is life cycle assessment? And its stages?');
  assert.deepEqual(ask('full-history', earlier, 'Why?').history,
    [{ role: 'user', content: 'What is life cycle assessment?' }, { role: 'assistant', content: 'An answer [1].' }]);
  assert.throws(() => new Conversation({ rule: 'everything' }), { code: 'invalid_request' });
  assert.equal(CONVERSATION_RULES.length, 4);
  const c = new Conversation();
  c.record(turn('q'));
  c.clear();
  assert.equal(c.turns.length, 0);
});

test('buildMessages: a follow-up names the earlier question after the sources; the system prompt stays first', () => {
  const countWords = (text) => text.split(/\s+/).filter(Boolean).length;
  const passages = [{ id: 'a', source: 'lca.md', page: null, text: 'Life cycle assessment has four stages.' }];
  const { messages } = buildMessages({ question: 'What are its stages?', followUpOf: 'What is LCA?', passages, countTokens: countWords, contextBudget: 1000 });
  assert.deepEqual(messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
  assert.equal(messages[0].content, SYSTEM_PROMPT);
  assert.deepEqual(messages.slice(1, 3), EXAMPLE_EXCHANGE, 'the worked example follows the system prompt, the same in every prompt');
  assert.ok(messages.at(-1).content.endsWith('Earlier question: What is LCA?\nQuestion: What are its stages?'), messages.at(-1).content);
  const alone = buildMessages({ question: 'What are its stages?', passages, countTokens: countWords, contextBudget: 1000 });
  assert.ok(!alone.messages.at(-1).content.includes('Earlier question'));
});

test('quality measures: loops, gold facts as whole words', () => {
  assert.equal(repeatedRunShare('one two three four five six seven'), 0);
  const looped = 'The model repeats this sentence again and again. '.repeat(4);
  assert.ok(repeatedRunShare(looped) > 0.6 && loops(looped));
  assert.equal(loops('Life cycle assessment measures the impacts of a product from cradle to grave [1].'), false);
  assert.equal(containsGold('cooled to -340 F with liquid nitrogen', { gold: 'liquid nitrogen' }), true);
  assert.equal(containsGold('a value of 3.12', { gold: '3.1' }), false);
  assert.equal(containsGold('at mach 6.8.', { gold: 'Mach 6.8' }), true);
  assert.equal(containsGold('nothing here', { gold: 'x', alternatives: ['here'] }), true);
});

test('a three-turn conversation with SmolLM2: cited sources, prefix reuse, a new topic retrieves its own', async () => {
  const registry = JSON.parse(await readFile(new URL('../../models/registry.json', import.meta.url)));
  const bytes = await readFile(join(process.env.EDGELLM_MODELS ?? join(homedir(), '.cache', 'edgellm', 'models'), 'SmolLM2-135M-Instruct.Q4_1.gguf'));
  const engine = new Engine();
  const info = await engine.load(bytes);
  const tokenizer = await loadTokenizer(bytes);
  const embedder = await Embedder.load();
  const embed = (texts) => embedder.embed(texts);
  const index = new DocumentIndex();
  const corpus = new URL('../../www/corpus/', import.meta.url);
  await indexDocuments(index, await sampleCorpus((f) => readFile(new URL(f, corpus), 'utf8')), embed);
  const preset = answerPreset(registry, registry.models.find((m) => m.id === 'smollm2-135m'));
  const conversation = new Conversation();
  const ask = async (question) => {
    const seen = { sources: null, extractive: null, pieces: [] };
    const turn = await answerQuestion({
      question, conversation, index, embed, countTokens: tokenizer.count, contextLength: info.contextLength,
      request: { ...preset, maxNewTokens: 48 },
      generate: (request, onToken) => engine.generate(request, onToken),
      onSources: (sources) => { seen.sources = sources; },
      onExtractive: (quick) => { seen.extractive = quick; },
      onToken: (piece) => seen.pieces.push(piece),
    });
    assert.equal(seen.sources, turn.sources, 'sources are shown before the answer');
    assert.ok(seen.extractive.sentences.length > 0 && seen.extractive.sentences.every((s) => s.n >= 1 && s.n <= turn.sources.length));
    assert.ok(seen.pieces.length > 0 && turn.text.length > 0);
    return turn;
  };

  const first = await ask('What is life cycle assessment?');
  assert.ok(first.sources.some((s) => s.source === 'life-cycle-assessment.md'), first.sources.map((s) => s.source).join());
  const second = await ask('What are its stages?');
  assert.equal(second.followUp, true);
  assert.ok(second.sources.some((s) => s.source === 'life-cycle-assessment.md'));
  // The system prompt (and more) comes from the KV cache instead of being prefilled again.
  assert.ok(second.timings.reusedPromptTokens > 20, JSON.stringify(second.timings));
  assert.equal(second.timings.prefillTokens, second.timings.promptTokens - second.timings.reusedPromptTokens);
  const third = await ask('How does climate change impact engineering design?');
  assert.equal(third.followUp, false);
  assert.equal(third.retrievalQuery, 'How does climate change impact engineering design?');
  assert.equal(third.sources[0].source, 'climate-change-and-engineering-design.md');
  assert.equal(conversation.turns.length, 3);
  const scored = scoreTurn(third, null);
  assert.equal(scored.goldInAnswer, null);
  assert.equal(typeof scored.validCitation, 'boolean');
  console.log(`# turns: ${conversation.turns.map((t) => `${t.timings.promptTokens} prompt (${t.timings.reusedPromptTokens} reused), TTFT ${t.timings.timeToFirstTokenMs.toFixed(0)} ms, ${t.finishReason}`).join('; ')}`);

  // An answer of 3 tokens is under attribution's 5 words and cites nothing: no source supports
  // it, so it is written again with sampling (twice at most), each try reading the whole prompt
  // from the KV cache, and the first answer stays when no try is supported.
  const rewrites = [];
  const once = (regenerate) => answerQuestion({
    question: 'What is life cycle assessment?', index, embed, countTokens: tokenizer.count, contextLength: info.contextLength,
    request: { ...preset, maxNewTokens: 3 }, generate: (request, onToken) => engine.generate(request, onToken),
    regenerate, onRegenerate: (next) => rewrites.push(next),
  });
  const short = await once(REGENERATION);
  const [written, ...again] = short.attempts;
  assert.equal(written.supported, false, written.text);
  assert.ok(again.length >= 1 && again.length <= REGENERATION.attempts, `${short.attempts.length} attempts`);
  assert.deepEqual(rewrites.map((r) => r.attempt), again.map((_, i) => i + 2));
  assert.equal(rewrites[0].discarded, written.text);
  for (const a of again) assert.equal(a.timings.prefillTokens, a.timings.promptTokens - a.timings.reusedPromptTokens);
  for (const a of again) assert.ok(a.timings.reusedPromptTokens >= written.timings.promptTokens - 1, JSON.stringify(a.timings));
  const kept = short.attempts.find((a) => a.supported) ?? written;
  assert.equal(short.text, kept.text);
  assert.equal(short.finishReason, kept.finishReason);
  rewrites.length = 0;
  const plain = await once(null);
  assert.equal(plain.attempts.length, 1, 'regenerate: null writes one answer');
  assert.equal(plain.text, written.text, 'the same greedy answer');
  assert.equal(rewrites.length, 0);
  await assert.rejects(once({ ...REGENERATION, attempts: -1 }), { code: 'invalid_request' });
  engine.unload();
  tokenizer.free();
  embedder.free();
});
