#!/usr/bin/env node
// Validates eval/answers/{cranfield-subset.json,questions.json}.
// Usage: node eval/answers/check.mjs   (exit code 1 on any violation)
//
// Rules checked:
//  - document ids unique and non-empty text; question / conversation ids unique
//  - every question / turn names a document that is in the subset
//  - gold is 1-6 words; gold and every alternative occur verbatim in the doc text
//    (case-insensitive, whitespace-normalised)
//  - no question contains its own gold or any of its alternatives (same normalisation)
//  - conversations have 3-4 turns; the first is "new-topic"; a "follow-up" stays on the
//    previous turn's document; a "new-topic" turn moves to a different document
//  - minimum counts: 36 questions, 6 conversations
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const load = (name) => JSON.parse(readFileSync(join(here, name), 'utf8'));
const norm = (s) => String(s).toLowerCase().replace(/\s+/g, ' ').trim();
const words = (s) => norm(s).split(' ').filter(Boolean).length;

const subset = load('cranfield-subset.json');
const qs = load('questions.json');
const errors = [];
const err = (where, msg) => errors.push(`${where}: ${msg}`);

// documents
const docs = new Map();
for (const d of subset.documents ?? []) {
  if (!d.id || typeof d.text !== 'string' || !d.text.trim()) err(d.id ?? '?', 'document without id or text');
  if (docs.has(d.id)) err(d.id, 'duplicate document id');
  docs.set(d.id, norm(d.text ?? ''));
}

// one question-like item (a question or a conversation turn)
const used = new Set();
function checkItem(where, item) {
  const { question, gold, doc } = item;
  const alts = item.alternatives ?? [];
  if (typeof question !== 'string' || !question.trim()) err(where, 'empty question');
  if (typeof gold !== 'string' || !gold.trim()) { err(where, 'empty gold'); return; }
  if (!Array.isArray(alts)) err(where, 'alternatives must be an array');
  const n = words(gold);
  if (n < 1 || n > 6) err(where, `gold has ${n} words (want 1-6): "${gold}"`);
  const text = docs.get(doc);
  if (text === undefined) { err(where, `doc ${doc} not in subset`); return; }
  used.add(doc);
  const q = norm(question);
  for (const [label, a] of [['gold', gold], ...alts.map((a) => ['alternative', a])]) {
    if (typeof a !== 'string' || !norm(a)) { err(where, `empty ${label}`); continue; }
    if (!text.includes(norm(a))) err(where, `${label} "${a}" not verbatim in ${doc}`);
    if (q.includes(norm(a))) err(where, `question contains its own ${label} "${a}"`);
  }
}

const qids = new Set();
for (const q of qs.questions ?? []) {
  if (!q.id) err('?', 'question without id');
  if (qids.has(q.id)) err(q.id, 'duplicate question id');
  qids.add(q.id);
  checkItem(q.id, q);
}

const cids = new Set();
let turns = 0, followUps = 0, newTopics = 0;
for (const c of qs.conversations ?? []) {
  if (!c.id) err('?', 'conversation without id');
  if (cids.has(c.id) || qids.has(c.id)) err(c.id, 'duplicate conversation id');
  cids.add(c.id);
  const ts = c.turns ?? [];
  if (ts.length < 3 || ts.length > 4) err(c.id, `has ${ts.length} turns (want 3-4)`);
  ts.forEach((t, i) => {
    const where = `${c.id}.t${i + 1}`;
    turns++;
    if (t.kind === 'follow-up') followUps++;
    else if (t.kind === 'new-topic') newTopics++;
    else err(where, `bad kind "${t.kind}"`);
    if (i === 0 && t.kind !== 'new-topic') err(where, 'first turn must be new-topic');
    if (i > 0) {
      const prev = ts[i - 1].doc;
      if (t.kind === 'follow-up' && t.doc !== prev) err(where, `follow-up on ${t.doc}, previous turn was ${prev}`);
      if (t.kind === 'new-topic' && t.doc === prev) err(where, `new-topic stays on ${t.doc}`);
    }
    checkItem(where, t);
  });
}

if (qids.size < 36) err('questions', `only ${qids.size} questions (want >= 36)`);
if (cids.size < 6) err('conversations', `only ${cids.size} conversations (want >= 6)`);
if (followUps === 0 || newTopics <= cids.size) err('conversations', 'want a mix of follow-up and later new-topic turns');

const qDocs = new Set((qs.questions ?? []).map((q) => q.doc));
console.log(`documents:     ${docs.size} (${used.size} carry questions or turns, ${docs.size - used.size} distractors)`);
console.log(`questions:     ${qids.size} over ${qDocs.size} documents`);
console.log(`conversations: ${cids.size} with ${turns} turns (${newTopics} new-topic, ${followUps} follow-up)`);
if (errors.length) {
  console.error(`\n${errors.length} violation(s):`);
  for (const e of errors) console.error('  ' + e);
  process.exit(1);
}
console.log('OK');
