// Drives Debian's headless Chromium through SSO login like a person on a
// phone: the Rouse login page, "Log in with SSO", the provider's login form
// (oidc-provider's development form), and back on Rouse's on-call page.
// Each step saves a screenshot to OUT_DIR.
// usage: node web_oidc.js <rouse base url> <out dir> <provider login>
// prints one JSON line describing what each step saw.
const { chromium } = require('playwright-core');
const fs = require('fs'), os = require('os'), path = require('path');

(async () => {
  const [base, outDir, login] = process.argv.slice(2);
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
    await page.goto(base + '/ui/oncall');
    await page.waitForSelector('#sso-login');
    const ssoUnavailable = await page.locator('#sso-unavailable').count();
    await shot(page, 'web-oidc-01-login.png');
    await page.click('#sso-login');
    await page.waitForSelector('input[name=login]');
    const providerUrl = page.url();
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any password');
    await shot(page, 'web-oidc-02-provider.png');
    await page.click('button[type=submit]');
    await page.waitForURL((u) => u.toString().startsWith(base + '/ui/'));
    await page.waitForLoadState('load');
    const afterLogin = page.url();
    const heading = await page.locator('h1').first().innerText();
    // The callback's path sees both Rouse cookies (Path=/ui, Path=/ui/login/oidc).
    const cookies = (await ctx.cookies(base + '/ui/login/oidc/callback')).map((c) => c.name);
    await shot(page, 'web-oidc-03-logged-in.png');
    console.log(JSON.stringify({ ssoUnavailable, providerUrl, afterLogin, heading, cookies, screenshots: shots }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
