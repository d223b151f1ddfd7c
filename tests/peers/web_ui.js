// Drives Debian's headless Chromium through the web UI like a person on a
// phone: log in with a password, watch an alert arrive in the list without
// reloading, open its timeline, acknowledge it; then, on a wide screen, the
// schedule picture in New York time. Each step saves a screenshot to OUT_DIR.
// usage: node web_ui.js <base url> <out dir> <integration key> <login> <password>
// prints one JSON line describing what each step saw.
const { chromium } = require('playwright-core');
const fs = require('fs'), os = require('os'), path = require('path');

(async () => {
  const [base, outDir, key, login, password] = process.argv.slice(2);
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rouse-chromium-profile-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 390, height: 844 },
    isMobile: true,
    timezoneId: 'America/New_York',
  });
  const shots = [];
  const shot = async (page, name) => {
    const file = path.join(outDir, name);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  };
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(20000);
    await page.goto(base + '/ui/alerts?status=open');
    await page.waitForSelector('input[name=password]');
    const loginUrl = page.url();
    await shot(page, 'web-01-login.png');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', password);
    await page.click('button:has-text("Log in")');
    await page.waitForSelector('h1:has-text("Alerts")');
    const afterLogin = page.url();
    await shot(page, 'web-02-alerts-empty.png');

    // A marker that a reload would wipe: the alert must arrive without one.
    await page.evaluate(() => { window.__rouseMarker = 'kept'; });
    const sent = await fetch(base + '/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-rouse-key': key },
      body: JSON.stringify({ action: 'trigger', summary: 'checkout latency above 2s',
        severity: 'critical', labels: { region: 'eu-west-1' }, details: { p99_ms: 2300, host: 'checkout-7' },
        links: [{ href: 'https://grafana.example/d/checkout', text: 'Checkout dashboard' }] }),
    });
    const event = await sent.json();
    await page.waitForSelector('#alert-list :text("checkout latency above 2s")');
    const marker = await page.evaluate(() => window.__rouseMarker);
    const filterKept = await page.$eval('select[name=status]', s => s.value);
    await shot(page, 'web-03-alert-arrived.png');

    await page.click('#alert-list a.row');
    await page.waitForSelector('#timeline');
    const localShown = await page.$eval('#timeline time .local', e => e.textContent);
    await shot(page, 'web-04-alert-detail.png');
    await page.click('#ack');
    await page.waitForSelector('#status:has-text("acknowledged")');
    const timeline = (await page.textContent('#timeline')).replace(/\s+/g, ' ').trim();
    await shot(page, 'web-05-acknowledged.png');

    await page.setViewportSize({ width: 1400, height: 900 });
    await page.goto(base + '/ui/schedules?tz=America/New_York');
    await page.waitForSelector('svg.timeline');
    const dst = (await page.textContent('.dst-list')).replace(/\s+/g, ' ').trim();
    const gaps = await page.$$eval('#timeline-primary .gaps li', ls => ls.map(l => l.textContent.replace(/\s+/g, ' ').trim()));
    const redBlocks = await page.$$eval('#timeline-primary svg g.gap', gs => gs.length);
    const overrides = await page.$$eval('#timeline-primary svg g.override', gs => gs.length);
    await shot(page, 'web-06-schedules.png');
    await page.goto(base + '/ui/oncall');
    await page.waitForSelector('h1:has-text("On call now")');
    const oncall = (await page.textContent('main')).replace(/\s+/g, ' ').trim();
    await shot(page, 'web-07-oncall.png');
    await page.goto(base + '/ui/config');
    await page.waitForSelector('h1:has-text("Configuration")');
    await shot(page, 'web-08-config.png');

    console.log(JSON.stringify({ loginUrl, afterLogin, alertId: event.alert_id, marker, filterKept,
      localShown, timeline, dst, gaps, redBlocks, overrides, oncall, screenshots: shots }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch(e => { console.error(String(e && e.stack || e)); process.exit(2); });
