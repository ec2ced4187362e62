// browser.mjs: the viewer's pages in a real browser (Debian's chromium,
// driven by puppeteer-core) against a real `weft view` on a real store.
// Run by t_view_browser.sh with: URL RUN SEQ NRUN SHOTS (and $WEFT).
import puppeteer from 'puppeteer-core';
import { execFileSync } from 'node:child_process';

const [url, run, seq, nrun, shots] = process.argv.slice(2);
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
  await page.click(`#runs tr[data-run="${run}"] a`);
  await page.waitForSelector('#tree .row[data-path="flow/writer"]');
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
