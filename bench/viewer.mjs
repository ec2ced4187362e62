// viewer.mjs: time to first render of a run in the viewer (bench/viewer.sh).
// Usage: node viewer.mjs URL RUN REPS
import puppeteer from 'puppeteer-core';

const [url, run, reps] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true, args: ['--no-sandbox', '--disable-gpu'],
});
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 800 });
const times = { first: [], run: [], replay: [], verdict: [], scroll: [] };
for (let i = 0; i < +reps; i++) {
  let t = performance.now();
  await page.goto(`${url}/#/run/${run}`, { waitUntil: 'domcontentloaded' });
  // First render: the tree's first rows.
  await page.waitForSelector('#tree .row', { timeout: 120000 });
  times.first.push(performance.now() - t);
  // Whole: every event folded in (the root span's end is the last one).
  await page.waitForSelector('#tree .row[data-path="big"] .bar.st-succeeded',
    { timeout: 120000 });
  times.run.push(performance.now() - t);
  t = performance.now();
  await page.goto(`${url}/#/replay/${run}`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#state[data-seq="1"]', { timeout: 120000 });
  times.replay.push(performance.now() - t);
  // weft replay's verdict (the viewer runs weft replay once the events
  // are in).
  await page.waitForSelector('#verdict[data-verdict]', { timeout: 120000 });
  times.verdict.push(performance.now() - t);
  // Scroll the event list from top to bottom in 100 steps.
  t = performance.now();
  await page.evaluate(async () => {
    const box = document.getElementById('events');
    for (let k = 1; k <= 100; k++) {
      box.scrollTop = box.scrollHeight * k / 100;
      await new Promise(r => requestAnimationFrame(r));
    }
  });
  times.scroll.push((performance.now() - t) / 100);
}
const med = a => a.sort((x, y) => x - y)[a.length >> 1].toFixed(0);
console.log(`run page: first render ${med(times.first)} ms, whole run ` +
  `${med(times.run)} ms; replay page ${med(times.replay)}` +
  ` ms (weft replay's verdict ${med(times.verdict)} ms), ` +
  `${med(times.scroll)} ms a scroll frame (median of ${reps})`);
await browser.close();
