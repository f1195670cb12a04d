// The conversation on the page, in headless Chromium: three turns on the default corpus (a
// question, a follow-up, a new topic) stay on screen as a thread, each answer streams, renders
// as markdown, and links its [n] citations to its own sources; the follow-up reuses the prompt
// the engine already holds; "New conversation" clears the thread and the conversation's memory.
// And the markdown renderer itself, in the page, against hostile input.
import test from 'node:test';
import assert from 'node:assert/strict';
import { withBrowser } from './chromium.mjs';

const BLOCKS = new Set(['P', 'UL', 'OL', 'BLOCKQUOTE', 'PRE', 'TABLE', 'HR', 'H5', 'H6']);
const ALLOWED = new Set([...BLOCKS, 'LI', 'STRONG', 'EM', 'S', 'CODE', 'BR', 'A', 'SPAN', 'THEAD', 'TBODY', 'TR', 'TH', 'TD']);

const HOSTILE = [
  '# Heading from the model',
  '',
  '<script>window.__pwned = 1</script>',
  '<img src=x onerror="window.__pwned = 2">',
  '',
  '[click me](javascript:window.__pwned=3) [data](data:text/html,hi) [rel](/app/main.js) [ok](https://example.com/a)',
  '',
  '![tracking pixel](http://127.0.0.1:9/pixel.png)',
  '',
  '<div onclick="window.__pwned = 4">a raw HTML block</div>',
  '<iframe src="javascript:window.__pwned = 5"></iframe>',
  '',
  '[1]: javascript:window.__pwned=6',
  '',
  'See [1], [7] and [1, 9]; `[1]` in code stays text. **Bold** and *emphasis*.',
].join('\n');

/** Wait for turn `n` to finish; its state, answer, sources and timings. */
async function turnResult(page, n) {
  const turn = `#thread .turn[data-turn="${n}"]`;
  await page.waitForSelector(`${turn}:is([data-state="done"], [data-state="error"], [data-state="stopped"])`, { timeout: 180_000 });
  return page.$eval(turn, async (li) => {
    const { citationSegments } = await import('/rag/cite.js');
    const answer = li.querySelector('.answer');
    // Text of the answer outside citation elements, code and links: no [n] may be left there.
    const loose = [];
    const walker = document.createTreeWalker(answer, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      if (!t.parentElement.closest('a, code, pre, .cite-invalid, .cite-group')) loose.push(t.data);
    }
    return {
      state: li.dataset.state,
      question: li.querySelector('.question').textContent,
      quick: li.querySelector('.quick:not([hidden]) .quick-text')?.textContent ?? null,
      quickCites: [...li.querySelectorAll('.quick-text a.cite')].map((a) => a.getAttribute('href')),
      answer: answer.textContent,
      children: [...answer.children].map((c) => c.tagName),
      tags: [...new Set([...answer.querySelectorAll('*')].map((e) => e.tagName))],
      looseCites: loose.flatMap((t) => citationSegments(t).filter((s) => s.kind === 'cite').map((s) => s.text)),
      cites: [...li.querySelectorAll('.answer a.cite')].map((a) => ({ href: a.getAttribute('href'), text: a.textContent, inTurn: !!li.querySelector(a.getAttribute('href').replace(/^#(.*)$/, '[id="$1"]')) })),
      invalid: [...li.querySelectorAll('.answer .cite-invalid')].map((s) => ({ title: s.title, text: s.textContent })),
      sources: [...li.querySelectorAll('.sources li')].map((s) => ({ id: s.id, name: s.querySelector('.meta .name').textContent, marks: s.querySelectorAll('.passage mark').length })),
      timings: li.querySelector('.timings').textContent,
      reused: Number(li.dataset.reusedPromptTokens),
      attempts: Number(li.dataset.attempts),
      finishReason: li.dataset.finishReason,
      followUp: li.dataset.followUp,
    };
  });
}

function checkTurn(r, n) {
  assert.equal(r.state, 'done', `turn ${n} ended ${r.state}: ${r.timings}`);
  assert.ok(r.answer.trim().length > 0, `turn ${n}: an answer`);
  // Rendered markdown: block elements only at the top, only whitelisted tags anywhere (a model's
  // "<b>" or "<script>" is text, never an element).
  assert.ok(r.children.length > 0 && r.children.every((t) => BLOCKS.has(t)), `turn ${n}: blocks ${r.children}`);
  assert.ok(r.tags.every((t) => ALLOWED.has(t)), `turn ${n}: tags ${r.tags}`);
  // Every citation is a link to one of this turn's sources or a marked number naming none.
  assert.deepEqual(r.looseCites, [], `turn ${n}: citations left as plain text`);
  for (const c of r.cites) {
    assert.match(c.href, new RegExp(`^#source-${n}-\\d+$`), JSON.stringify(c));
    assert.ok(c.inTurn, `turn ${n}: ${c.href} names no source element of the turn`);
  }
  for (const i of r.invalid) assert.match(i.title, /^no source \d+$/, JSON.stringify(i));
  assert.ok(r.sources.length > 0, `turn ${n}: sources`);
  r.sources.forEach((s, i) => assert.equal(s.id, `source-${n}-${i + 1}`));
  for (const href of r.quickCites) assert.ok(r.sources.some((s) => `#${s.id}` === href), `quick answer cites ${href}`);
  assert.match(r.timings, /retrieval \d+ ms .* prompt tokens \(\d+ reused\) .* tokens at [\d.]+ tok\/s/, r.timings);
}

async function ask(page, question, how = 'click') {
  await page.fill('#question', question);
  if (how === 'enter') await page.press('#question', 'Enter');
  else await page.click('#ask');
}

test('a three-turn conversation stays on screen, streams, renders markdown and links its citations', { timeout: 420_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 240_000 });

    // The renderer against hostile markdown, in the page (it needs a DOM).
    const hostile = await page.evaluate(async (text) => {
      const { renderAnswer } = await import('/app/render.js');
      const div = document.createElement('div');
      div.dataset.turn = 'h';
      document.body.append(div);
      renderAnswer(div, text, [{ n: 1, source: 'a.md', page: null, text: 'passage' }]);
      await new Promise((r) => setTimeout(r, 300)); // time for an onerror to fire, were there an image
      const attributes = [...div.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name));
      const result = {
        dangerous: div.querySelectorAll('script, img, iframe, object, embed, style, svg, link, meta, form, input').length,
        headings: [...div.querySelectorAll('h1, h2, h3, h4, h5, h6')].map((h) => h.tagName),
        hrefs: [...div.querySelectorAll('[href]')].map((a) => a.getAttribute('href')),
        srcs: div.querySelectorAll('[src]').length,
        attributes: [...new Set(attributes)],
        pwned: window.__pwned,
        text: div.textContent,
        cite: div.querySelector('a.cite')?.getAttribute('href'),
        invalid: [...div.querySelectorAll('.cite-invalid')].map((s) => [s.textContent, s.title]),
        codeText: div.querySelector('code')?.textContent,
        strong: div.querySelector('strong')?.textContent,
      };
      div.remove();
      return result;
    }, HOSTILE);
    assert.equal(hostile.dangerous, 0, JSON.stringify(hostile));
    assert.equal(hostile.srcs, 0);
    assert.equal(hostile.pwned, undefined);
    assert.deepEqual(hostile.headings, ['H5'], 'the model\'s # heading is demoted below the page\'s');
    assert.ok(hostile.hrefs.every((h) => h === 'https://example.com/a' || /^#source-h-\d+$/.test(h)), `hrefs: ${hostile.hrefs}`);
    assert.ok(hostile.hrefs.includes('https://example.com/a'));
    assert.ok(!hostile.attributes.some((a) => a.startsWith('on') || a === 'style' || a === 'src'), `attributes: ${hostile.attributes}`);
    assert.ok(hostile.text.includes('<script>window.__pwned = 1</script>'), 'raw HTML is shown as text');
    assert.ok(hostile.text.includes('[image: tracking pixel]'), 'an image is shown as its alt text, not loaded');
    assert.equal(hostile.cite, '#source-h-1');
    assert.deepEqual(hostile.invalid, [['[7?]', 'no source 7'], ['9?', 'no source 9']]);
    assert.equal(hostile.codeText, '[1]');
    assert.equal(hostile.strong, 'Bold');

    // Settings: the decoding choice and the model's answer preset.
    await page.click('#documents summary');
    await page.fill('#max-new-tokens', '48');
    await page.click('#load');
    await page.waitForFunction(() => !document.getElementById('ask').disabled, null, { timeout: 120_000 });
    const registry = await page.evaluate(async () => (await fetch('/registry.json')).json());
    const preset = registry.models.find((m) => m.id === registry.default).answer;
    const settings = await page.evaluate(() => ({
      options: [...document.querySelectorAll('#decoding option')].map((o) => o.textContent),
      decoding: document.getElementById('decoding').value,
      listed: [...document.querySelectorAll('#preset dt')].map((d) => d.textContent),
      status: document.getElementById('preset-status').textContent,
      maxNewTokens: document.getElementById('max-new-tokens').value,
    }));
    assert.deepEqual(settings.options, ['Answer preset (recommended)', 'Greedy (for benchmarks)']);
    assert.equal(settings.maxNewTokens, '48', 'a value the user typed is kept when a model loads');
    if (preset) {
      assert.equal(settings.decoding, 'preset');
      assert.ok(settings.listed.includes('Max answer tokens') && settings.listed.length >= Object.keys(preset).length, settings.listed.join());
      assert.ok(settings.listed.includes('An answer no source supports'), settings.listed.join());
    } else {
      assert.equal(settings.decoding, 'greedy');
      assert.match(settings.status, /no answer preset/);
    }

    // Record the answer's length at each re-render while it streams.
    await page.evaluate(() => {
      window.__streamed = {};
      new MutationObserver(() => {
        for (const li of document.querySelectorAll('#thread .turn[data-state="streaming"]')) {
          (window.__streamed[li.dataset.turn] ??= new Set()).add(li.querySelector('.answer').textContent.length);
        }
      }).observe(document.getElementById('thread'), { subtree: true, childList: true, characterData: true });
    });

    const questions = ['What is life cycle assessment?', 'What are its four phases?', 'How does climate change impact engineering design?'];
    const results = [];
    for (const [i, q] of questions.entries()) {
      await ask(page, q, i === 0 ? 'enter' : 'click');
      results.push(await turnResult(page, i + 1));
      console.log(`# turn ${i + 1}: ${results[i].timings}\n#   quick: ${JSON.stringify(results[i].quick)}\n#   answer: ${JSON.stringify(results[i].answer)}`);
    }
    const streamed = await page.evaluate(() => Object.fromEntries(Object.entries(window.__streamed).map(([k, v]) => [k, [...v]])));
    results.forEach((r, i) => {
      checkTurn(r, i + 1);
      assert.equal(r.question, questions[i]);
      assert.ok(r.quick !== null, `turn ${i + 1}: a quick answer from the documents`);
      // A few-token answer may arrive within one frame; a longer one must be seen growing.
      if (r.answer.length >= 40) {
        assert.ok((streamed[i + 1] ?? []).filter((l) => l > 0).length >= 2, `turn ${i + 1}: the answer grew while streaming (${streamed[i + 1]})`);
      }
    });
    assert.ok(results.some((r) => r.answer.length >= 40), 'at least one answer long enough to watch it stream');
    assert.equal(await page.$$eval('#thread .turn', (t) => t.length), 3, 'all three turns stay on screen');
    assert.equal(results[1].followUp, 'true', 'the second question is a follow-up');
    assert.ok(results[1].reused > 0, `the follow-up reuses prompt tokens the engine holds (${results[1].timings})`);
    assert.equal(results[2].followUp, 'false', 'the third question starts a new topic');
    assert.ok(results[2].sources.some((s) => s.name.startsWith('climate-change-and-engineering-design.md')), JSON.stringify(results[2].sources));
    assert.ok(results[0].sources.some((s) => s.name.startsWith('life-cycle-assessment.md')), JSON.stringify(results[0].sources));

    // New conversation: the thread empties and the memory goes (the same follow-up now stands alone).
    await page.click('#new-chat');
    assert.equal(await page.$$eval('#thread .turn', (t) => t.length), 0);
    assert.ok(await page.isVisible('#thread-empty'));
    await page.fill('#max-new-tokens', '4');
    await ask(page, 'What are its four phases?');
    const fresh = await turnResult(page, 1);
    assert.equal(fresh.state, 'done', fresh.timings);
    assert.equal(fresh.followUp, 'false', 'after New conversation there is nothing to follow up');
    // Four tokens are too few words to match a source: the answer is written again, and says so.
    assert.ok(fresh.attempts >= 2, `${fresh.attempts} attempt(s): ${fresh.answer} · ${fresh.timings}`);
    assert.match(fresh.timings, new RegExp(`written ${fresh.attempts} times`), fresh.timings);
    for (const r of results) assert.equal(r.attempts > 1, /written \d+ times/.test(r.timings), r.timings);
    assert.equal(await page.$$eval('#thread .turn', (t) => t.length), 1);

    assert.ok(!logs.some((l) => l.startsWith('pageerror') || /Content Security Policy/i.test(l)), logs.join('\n'));
  });
});
