// check.mjs: point Apple's own Node library (@apple/app-store-server-library)
// at the storesync App Store simulator and verify that every call parses and
// every signed item verifies with Apple's SignedDataVerifier against the
// simulator's root. Exits non-zero on any error.
//
// Settings come from the environment `storesync sim` prints (APPSTORE_*), or
// from --name=value arguments with the same names in lower case without the
// prefix (--base-url, --private-key-file, --key-id, --issuer-id, --bundle-id,
// --app-apple-id, --root-certs). Optional: --customers=N (default 25),
// --advance=72h (moved on the simulated clock first, so there are
// notifications to fetch).

import fs from 'node:fs';
import lib from '@apple/app-store-server-library';

const { AppStoreServerAPIClient, SignedDataVerifier, Environment, GetTransactionHistoryVersion, Order, APIException } = lib;

function setting(name) {
  const flag = '--' + name.toLowerCase().replace(/_/g, '-') + '=';
  const arg = process.argv.slice(2).find((a) => a.startsWith(flag));
  if (arg) return arg.slice(flag.length);
  return process.env['APPSTORE_' + name] ?? process.env[name];
}

function required(name) {
  const v = setting(name);
  if (!v) {
    console.error(`missing setting ${name}: export APPSTORE_${name} (see storesync sim output) or pass --${name.toLowerCase().replace(/_/g, '-')}=`);
    process.exit(2);
  }
  return v;
}

const baseURL = required('BASE_URL').replace(/\/$/, '');
const signingKey = fs.readFileSync(required('PRIVATE_KEY_FILE'), 'utf8');
const keyId = required('KEY_ID');
const issuerId = required('ISSUER_ID');
const bundleId = required('BUNDLE_ID');
const appAppleId = Number(required('APP_APPLE_ID'));
const roots = required('ROOT_CERTS').split(',').map((p) => fs.readFileSync(p.trim()));
const customers = Number(setting('CUSTOMERS') ?? 25);
const advance = setting('ADVANCE') ?? '72h';

const counts = {};
const count = (what, n = 1) => { counts[what] = (counts[what] ?? 0) + n; };
const failures = [];
const fail = (what, err) => {
  const api = err?.httpStatusCode !== undefined ? ` (HTTP ${err.httpStatusCode}, apiError ${err.apiError}, ${err.errorMessage})` : '';
  const status = err?.status !== undefined ? ` (verification status ${err.status})` : '';
  failures.push(`${what}: ${err?.message || err?.constructor?.name || err}${api}${status}`);
};

// retry429 wraps every API method of client: a 429 (the simulator enforces
// Apple's limits, 10% of them in the sandbox) waits and retries, as a real
// caller must. Apple's library does not expose Retry-After, so the wait is
// fixed.
function retry429(client) {
  return new Proxy(client, {
    get(target, prop) {
      const v = target[prop];
      if (typeof v !== 'function' || prop === 'makeRequest' || prop === 'makeFetchRequest' || prop === 'createBearerToken') return v;
      return async (...args) => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await v.apply(target, args);
          } catch (err) {
            if (!(err instanceof APIException) || err.httpStatusCode !== 429 || attempt >= 100) throw err;
            count('429 answers waited out');
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      };
    },
  });
}

// makeClient builds Apple's client for env and points it at the simulator:
// the library keeps its host in urlBase, set by the constructor from the
// environment, so overriding it after construction redirects every call.
function makeClient(env) {
  const client = new AppStoreServerAPIClient(signingKey, keyId, issuerId, bundleId, env);
  client.urlBase = env === Environment.SANDBOX ? baseURL + '/sandbox' : baseURL;
  return retry429(client);
}

async function control(method, path) {
  const resp = await fetch(baseURL + path, { method });
  if (!resp.ok) throw new Error(`${method} ${path}: HTTP ${resp.status}`);
  return resp.text();
}

async function checkEnvironment(env, ids, windowStart, windowEnd) {
  const client = makeClient(env);
  const verifier = new SignedDataVerifier(roots, false, env, bundleId, appAppleId);
  const tag = env === Environment.SANDBOX ? 'sandbox' : 'production';

  for (const id of ids) {
    try {
      const statuses = await client.getAllSubscriptionStatuses(id);
      count(`${tag} statuses`);
      if (statuses.environment !== env || statuses.bundleId !== bundleId || statuses.appAppleId !== appAppleId) {
        throw new Error(`status response header ${statuses.environment}/${statuses.bundleId}/${statuses.appAppleId}`);
      }
      for (const group of statuses.data) {
        for (const item of group.lastTransactions) {
          const tx = await verifier.verifyAndDecodeTransaction(item.signedTransactionInfo);
          const rn = await verifier.verifyAndDecodeRenewalInfo(item.signedRenewalInfo);
          count(`${tag} signed items verified`, 2);
          if (tx.originalTransactionId !== item.originalTransactionId || rn.originalTransactionId !== item.originalTransactionId) {
            throw new Error(`item ${item.originalTransactionId}: transaction ${tx.originalTransactionId}, renewal ${rn.originalTransactionId}`);
          }
          if (item.status < 1 || item.status > 5) throw new Error(`status ${item.status}`);
        }
      }
    } catch (err) { fail(`${tag} getAllSubscriptionStatuses(${id})`, err); }

    try {
      let revision = null;
      let pages = 0;
      const seen = new Set();
      let latest = null;
      for (;;) {
        const page = await client.getTransactionHistory(id, revision, { sort: Order.ASCENDING }, GetTransactionHistoryVersion.V2);
        pages++;
        for (const jws of page.signedTransactions) {
          const tx = await verifier.verifyAndDecodeTransaction(jws);
          count(`${tag} signed items verified`);
          seen.add(tx.transactionId);
          latest = tx.transactionId;
        }
        if (!page.revision) throw new Error('history page without revision');
        revision = page.revision;
        if (!page.hasMore) break;
        if (pages > 500) throw new Error('history paging does not end');
      }
      count(`${tag} history pages`, pages);
      count(`${tag} history transactions`, seen.size);
      const info = await client.getTransactionInfo(latest);
      const tx = await verifier.verifyAndDecodeTransaction(info.signedTransactionInfo);
      count(`${tag} transaction info`);
      count(`${tag} signed items verified`);
      if (tx.transactionId !== latest) throw new Error(`transaction info for ${latest} returned ${tx.transactionId}`);
    } catch (err) { fail(`${tag} getTransactionHistory/getTransactionInfo(${id})`, err); }
  }

  try {
    let token = null;
    let pages = 0;
    const request = { startDate: windowStart, endDate: windowEnd };
    for (;;) {
      const page = await client.getNotificationHistory(token, request);
      pages++;
      for (const item of page.notificationHistory) {
        const n = await verifier.verifyAndDecodeNotification(item.signedPayload);
        count(`${tag} notifications verified`);
        if (n.data?.signedTransactionInfo) {
          await verifier.verifyAndDecodeTransaction(n.data.signedTransactionInfo);
          await verifier.verifyAndDecodeRenewalInfo(n.data.signedRenewalInfo);
          count(`${tag} signed items verified`, 2);
        }
      }
      if (!page.hasMore) break;
      token = page.paginationToken;
      if (pages > 1000) throw new Error('notification history paging does not end');
    }
    count(`${tag} notification history pages`, pages);
  } catch (err) { fail(`${tag} getNotificationHistory`, err); }
}

async function expectAPIError(what, fn, status, code) {
  try {
    await fn();
    fail(what, new Error(`succeeded, want HTTP ${status} / ${code}`));
  } catch (err) {
    if (!(err instanceof APIException) || err.httpStatusCode !== status || err.apiError !== code) {
      fail(what, new Error(`got ${err?.httpStatusCode}/${err?.apiError} (${err?.message}), want ${status}/${code}`));
    } else {
      count('expected API errors');
    }
  }
}

async function main() {
  const report = JSON.parse(await control('POST', `/sim/advance?d=${encodeURIComponent(advance)}`));
  const now = Date.parse(report.To);
  const windowStart = Date.parse(report.From);
  const windowEnd = now + 1;

  const csv = (env) => control('GET', `/sim/ids?env=${env}`).then((t) => t.trim().split('\n').slice(1).map((l) => l.split(',')[0]));
  const production = await csv('production');
  const sandbox = await csv('sandbox');
  // Spread the picks over the population so long histories and unusual
  // states appear.
  const pick = (ids, n) => ids.filter((_, i) => i % Math.max(1, Math.floor(ids.length / n)) === 0).slice(0, n);
  await checkEnvironment(Environment.PRODUCTION, pick(production, customers), windowStart, windowEnd);
  await checkEnvironment(Environment.SANDBOX, pick(sandbox, Math.max(2, Math.floor(customers / 10))), windowStart, windowEnd);

  const client = makeClient(Environment.PRODUCTION);
  await expectAPIError('unknown transaction id', () => client.getTransactionInfo('99999999'), 404, 4040010);
  await expectAPIError('malformed transaction id', () => client.getTransactionInfo('12ab'), 400, 4000006);
  await expectAPIError('foreign revision', () => client.getTransactionHistory(production[0], 'bogus', {}, GetTransactionHistoryVersion.V2), 400, 4000005);
  if (sandbox.length > 0) {
    await expectAPIError('sandbox id in production', () => client.getTransactionInfo(sandbox[0]), 404, 4040010);
  }

  for (const [k, v] of Object.entries(counts).sort()) console.log(`${k}: ${v}`);
  if (failures.length > 0) {
    console.error(`\n${failures.length} failure(s):`);
    for (const f of failures) console.error('  ' + f);
    process.exit(1);
  }
  console.log('\nOK: Apple\'s Node library accepted every response and verified every signed item.');
}

main().catch((err) => { console.error(err); process.exit(1); });
