// A real OpenID Connect provider (npm oidc-provider) for the web UI's SSO
// tests: one confidential client whose only redirect URI is Rouse's callback,
// PKCE (S256) required, and the development login form, which logs in any
// login name with any password; the account's email is ACCOUNTS[login] or
// <login>@nobody.example. Consent is granted without asking, so a login is:
// authorize -> login form -> redirect back to Rouse with a code.
//
//   node oidc_provider.js PORT REDIRECT_URI CLIENT_ID CLIENT_SECRET '{"alice":"alice@example.com"}'
//
// Prints "listening <issuer>" once it serves.
'use strict';

async function main() {
  const [port, redirect, clientId, clientSecret, accountsJson] = process.argv.slice(2);
  const accounts = JSON.parse(accountsJson || '{}');
  const { default: Provider } = await import('oidc-provider');
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirect],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    cookies: { keys: ['rouse-test-cookie-key-0123456789'] },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email: accounts[sub] || `${sub}@nobody.example`, email_verified: true };
        },
      };
    },
    // No consent screen: the test client is first-party.
    async loadExistingGrant(ctx) {
      const grantId =
        (ctx.oidc.result && ctx.oidc.result.consent && ctx.oidc.result.consent.grantId) ||
        ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        return ctx.oidc.provider.Grant.find(grantId);
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email');
      await grant.save();
      return grant;
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
