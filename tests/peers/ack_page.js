// Drives Debian's headless Chromium through an ack link like a person on a
// phone: open the page holding the link, follow it, press Acknowledge, read
// the confirmation. Screenshots go to OUT_DIR.
// usage: node ack_page.js <url of the page with a#ack-link> <out dir>
// prints one JSON line: {"shown": "...", "confirmed": "...", "screenshots": [...]}
const { chromium } = require('playwright-core');
const fs = require('fs'), os = require('os'), path = require('path');

(async () => {
  const [url, outDir] = process.argv.slice(2);
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rouse-chromium-profile-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 390, height: 740 },
    isMobile: true,
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(15000);
    await page.goto(url);
    await page.click('#ack-link');
    await page.waitForSelector('button:has-text("Acknowledge")');
    const shown = (await page.textContent('h1')).trim();
    const before = path.join(outDir, 'ack-page.png');
    await page.screenshot({ path: before, fullPage: true });
    await page.click('button:has-text("Acknowledge")');
    await page.waitForSelector('h1:has-text("Acknowledged")');
    const confirmed = (await page.textContent('body')).replace(/\s+/g, ' ').trim();
    const after = path.join(outDir, 'ack-confirmed.png');
    await page.screenshot({ path: after, fullPage: true });
    console.log(JSON.stringify({ shown, confirmed, screenshots: [before, after] }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch(e => { console.error(String(e && e.stack || e)); process.exit(2); });
