// browser.mjs: the viewer's pages in a real browser (Debian's chromium,
// driven by puppeteer-core) against a real `weft view` on a real store.
// Run by t_view_browser.sh with: URL RUN SEQ NRUN SHOTS (and $WEFT).
import puppeteer from 'puppeteer-core';
import { execFileSync } from 'node:child_process';

const [url, run, seq, nrun, shots] = process.argv.slice(2);
// The runs of the newer views (t_view_browser.sh says what each holds).
const { RUN2: run2, DIVSEQ: divseq, RICH: rich, ARUN: arun } = process.env;
const problems = [];
function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exitCode = 1;
  throw new Error(msg);
}
function ok(msg) { console.log('ok - ' + msg); }

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run',
         '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.on('pageerror', e => problems.push('page error: ' + e.message));
  page.on('console', m => {
    if (m.type() === 'error') problems.push('console: ' + m.text());
  });
  page.on('dialog', d => { problems.push('dialog: ' + d.message());
    d.dismiss(); });
  page.on('response', r => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`);
  });
  // Anything fetched from elsewhere than the viewer is a failure.
  page.on('request', r => {
    if (!r.url().startsWith(url) && !r.url().startsWith('data:'))
      problems.push('external request: ' + r.url());
  });

  // Runs list.
  await page.goto(url + '/', { waitUntil: 'load' });
  await page.waitForSelector(`#runs tr[data-run="${run}"]`);
  await page.screenshot({ path: shots + '/runs.png' });
  ok('the runs list shows the run');

  // One run: the tree, a node, its tool call and model answer.
  // (In the page at once: the live list may redraw between two steps.)
  await page.$eval(`#runs tr[data-run="${run}"] a`, a => a.click());
  await page.waitForSelector('#tree .row[data-path="flow/writer"]');
  // The sections above the tree come in after it (weft eval's scores):
  // wait for them, so that nothing moves under the mouse.
  await page.waitForSelector('#eval');
  await page.click('#tree .row[data-path="flow/writer"]');
  await page.waitForSelector('#detail details.tool');
  await page.click('#detail details.tool summary');
  const result = await page.$eval('#detail details.tool .result',
    e => e.textContent);
  if (result !== 'Echo: <img src=x onerror=alert(1)>')
    fail('tool result read: ' + JSON.stringify(result));
  ok('expand a node and read a tool result');
  await page.click('#detail details.model summary');
  const answers = await page.$$eval('#detail .answer', es =>
    es.map(e => e.textContent));
  if (!answers.some(a => a.includes('<script>window.__pwned = 1</script>')))
    fail('model answer not shown as text: ' + JSON.stringify(answers));
  const inert = await page.evaluate(() => ({
    imgs: document.querySelectorAll('#main img').length,
    scripts: document.querySelectorAll('#main script').length,
    pwned: window.__pwned,
  }));
  if (inert.imgs || inert.scripts || inert.pwned !== undefined)
    fail('hostile content is not inert: ' + JSON.stringify(inert));
  ok('HTML and <script> in run content stay inert text');
  await page.screenshot({ path: shots + '/run.png', fullPage: true });

  // Replay: scrub to step SEQ and read the state shown.
  await page.goto(url + '/#/replay/' + run, { waitUntil: 'load' });
  await page.waitForSelector('#state[data-seq="1"]');
  await page.$eval('#scrub', (e, s) => {
    e.value = s;
    e.dispatchEvent(new Event('input'));
  }, seq);
  await page.waitForSelector(`#state[data-seq="${seq}"]`);
  const state = await page.$$eval('#state tr', rs => rs.map(r =>
    [r.dataset.key, r.querySelector('pre').textContent,
     r.classList.contains('changed')]));
  const want = JSON.stringify([
    ['answer', '<script>window.__pwned = 1</script>done', true],
    ['topic', 'x', false]]);
  if (JSON.stringify(state) !== want)
    fail(`state at step ${seq}: ${JSON.stringify(state)}, want ${want}`);
  const before = await page.$eval('#step', e => e.textContent);
  await page.click('#prev');
  await page.waitForSelector(`#state[data-seq="${seq - 1}"]`);
  const keys = await page.$$eval('#state tr', rs => rs.map(
    r => r.dataset.key));
  if (JSON.stringify(keys) !== '["topic"]')
    fail('state one step back: ' + JSON.stringify(keys));
  await page.click('#next');
  await page.waitForSelector(`#state[data-seq="${seq}"]`);
  await page.screenshot({ path: shots + '/replay.png', fullPage: true });
  ok(`scrub the replay to step ${seq} (${before}) and read the state`);

  // Replay: weft replay's verdict, the first divergence at its step.
  await page.goto(url + '/#/replay/' + run, { waitUntil: 'load' });
  await page.waitForSelector('#verdict[data-verdict="diverged"]');
  const vtext = await page.$eval('#verdict', e => e.textContent);
  if (!vtext.includes(`diverges at step ${divseq}`) ||
      !vtext.includes('"two"'))
    fail('replay verdict: ' + JSON.stringify(vtext));
  await page.click('#goto-divergence');
  await page.waitForSelector(`#state[data-seq="${divseq}"]`);
  await page.waitForSelector('#divergence-here');
  const here = await page.$eval('#current h3', e => e.textContent);
  if (here !== `#${divseq} tool.call`)
    fail('the divergence is shown at ' + here);
  if (!await page.$(`#events .ev.div[data-seq="${divseq}"]`))
    fail('the divergence is not marked in the event list');
  await page.screenshot({ path: shots + '/replay-divergence.png',
    fullPage: true });
  await page.goto(url + '/#/replay/' + run2, { waitUntil: 'load' });
  await page.waitForSelector('#verdict[data-verdict="identical"]');
  ok(`weft replay's verdict: run diverges at step ${divseq}, ` +
    'the run of the edited workflow is identical');

  // weft eval against the golden file of weft view, on the run page.
  await page.goto(url + '/#/run/' + run, { waitUntil: 'load' });
  await page.waitForSelector('#eval #eval-f1');
  if (await page.$eval('#eval-f1', e => e.textContent) !== '1.000')
    fail('eval of the first run');
  await page.goto(url + '/#/run/' + run2, { waitUntil: 'load' });
  await page.waitForSelector('#eval #eval-f1');
  const ev2 = await page.$eval('#eval', e => e.textContent);
  if (!ev2.includes('F1 0.500') ||
      !ev2.includes('#2 test.echo {"message":"two"}') ||
      !ev2.includes('#2 test.echo {"message":"three"}'))
    fail('eval of the second run: ' + JSON.stringify(ev2));
  await page.screenshot({ path: shots + '/eval.png' });
  ok('weft eval: scores against the golden file, missing and extra calls');

  // Two runs side by side, reached from a run page.
  await page.waitForFunction(r => [...document.querySelectorAll(
    '#compare-with option')].some(o => o.value === r), {}, run);
  await page.select('#compare-with', run);
  await page.waitForSelector('#diff-summary');
  if (!page.url().endsWith(`#/diff/${run2}/${run}`))
    fail('compare leads to ' + page.url());
  const changed = await page.$$eval('#diff .drow[data-op="changed"]', rs =>
    rs.map(r => r.textContent));
  if (changed.length !== 1 || !changed[0].includes('"three"') ||
      !changed[0].includes('"two"'))
    fail('diff rows changed: ' + JSON.stringify(changed));
  if (!await page.$('#diff .drow.first[data-op="changed"]'))
    fail('the first divergence is not marked');
  const summ = await page.$eval('#diff-summary', e => e.textContent);
  if (!/first divergence at row \d+/.test(summ))
    fail('diff summary: ' + summ);
  await page.screenshot({ path: shots + '/diff.png' });
  ok('two runs side by side as weft diff aligns them');

  // A run page: provider attempts and the fallback of a model turn, the
  // budget, tokens minted and refused, the sandbox of a tool call.
  await page.goto(url + '/#/run/' + rich, { waitUntil: 'load' });
  await page.waitForSelector('#tree .row[data-path="rich/asker"]');
  await page.waitForSelector('#eval');
  await page.click('#tree .row[data-path="rich/asker"]');
  await page.waitForSelector('#detail details.turn');
  await page.click('#detail details.turn summary');
  const turn = await page.$eval('#detail details.turn', e => ({
    head: e.querySelector('summary').textContent,
    lines: [...e.querySelectorAll('.attempts .attempt')].map(
      a => a.textContent),
    answer: e.querySelector('.answer')?.textContent }));
  if (!turn.head.includes('openai:gpt-test') ||
      !turn.head.includes('fallback') ||
      !turn.lines.some(l => /^attempt 1 anthropic:claude-test failed/.test(l))
      || !turn.lines.some(l => l.includes(
        'fallback anthropic:claude-test → openai:gpt-test')) ||
      turn.lines[turn.lines.length - 1] !== 'answered by openai:gpt-test' ||
      turn.answer !== '<i>from the fallback</i>')
    fail('model turn: ' + JSON.stringify(turn));
  ok('a model turn shows its attempts, its fallback and who answered');
  const budget = await page.$eval(
    '#budgets tr[data-env="rich"][data-dim="tool_calls"]', r =>
      [...r.querySelectorAll('td')].map(t => t.textContent));
  if (budget[2] !== '10' || !(+budget[3] >= 1) || budget[4] !== '0')
    fail('budget row: ' + JSON.stringify(budget));
  const tok = await page.evaluate(() => ({
    minted: document.querySelectorAll('#minted tbody tr').length,
    refused: [...document.querySelectorAll('#refused tbody tr')].map(
      r => r.textContent) }));
  if (tok.minted < 1 || tok.refused.length !== 1 ||
      !tok.refused[0].includes('argument'))
    fail('tokens: ' + JSON.stringify(tok));
  await page.click('#tree .row[data-path="rich/bad"]');
  await page.waitForSelector('#detail details.tool .refused');
  await page.click('#tree .row[data-path="rich/ok"]');
  await page.waitForSelector('#detail details.tool');
  await page.click('#detail details.tool summary');
  const sandbox = await page.$$eval('#detail details.tool .sandbox',
    es => es.map(e => e.textContent));
  if (!sandbox.length || !sandbox.every(t => t.includes('in force')))
    fail('sandbox: ' + JSON.stringify(sandbox));
  await page.screenshot({ path: shots + '/run-details.png', fullPage: true });
  ok('budgets spent and reserved, tokens minted and refused, the sandbox ' +
    'of a tool call');

  // A run waiting for an approval: the question, its state, how to answer.
  await page.goto(url + '/#/run/' + arun, { waitUntil: 'load' });
  await page.waitForSelector('#approvals .approval[data-path="release/go"]');
  const ap = await page.$eval('#approvals', e => ({
    text: e.textContent, prompt: e.querySelector('.prompt').textContent,
    howto: e.querySelector('.howto pre').textContent }));
  if (ap.prompt !== 'Deploy <script>window.__pwned = 2</script>?' ||
      !ap.text.includes('waiting') ||
      !ap.howto.includes(`weft approve ${arun} --node release/go`) ||
      !ap.howto.includes(`weft reject ${arun} --node release/go`))
    fail('approval: ' + JSON.stringify(ap));
  const inert2 = await page.evaluate(() => ({
    scripts: document.querySelectorAll('#main script').length,
    pwned: window.__pwned }));
  if (inert2.scripts || inert2.pwned !== undefined)
    fail('hostile prompt is not inert: ' + JSON.stringify(inert2));
  await page.screenshot({ path: shots + '/approval.png' });
  ok('a waiting approval: its question as text, its state, how to answer');

  // Live: a running run updates as it ends, without a reload.
  await page.goto(url + '/#/run/' + nrun, { waitUntil: 'load' });
  await page.waitForFunction(() =>
    !document.getElementById('live').hidden &&
    /running/.test(document.getElementById('summary')?.textContent));
  await page.evaluate(() => { window.__same = 1; });
  await page.screenshot({ path: shots + '/live-running.png' });
  execFileSync(process.env.WEFT, ['cancel', nrun], { stdio: 'inherit' });
  await page.waitForFunction(() =>
    /cancelled/.test(document.getElementById('summary')?.textContent),
    { timeout: 120000 });
  await page.waitForSelector('#tree .row[data-path="s/nap"] .bar.st-cancelled');
  if (await page.evaluate(() => window.__same) !== 1)
    fail('the page reloaded');
  if (await page.$eval('#live', e => e.hidden) !== true)
    fail('still marked live after the run ended');
  await page.screenshot({ path: shots + '/live-ended.png' });
  ok('a running run updates live until it is cancelled');

  if (problems.length) fail('the page complained:\n' + problems.join('\n'));
  ok('no page errors, no CSP violations, no external requests');
} finally {
  await browser.close();
}
