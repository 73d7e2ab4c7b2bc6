import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { prepareDemo, startDemo } from './src/demo/space.js';
import { tempDir, testLogger } from './test/helpers.js';
const { dir, cleanup } = tempDir();
const layout = await prepareDemo(dir, { ports: 'ephemeral', patients: false });
const demo = await startDemo(layout, { logger: testLogger(), psc: false });
try {
  for (const [name, port, extra] of [['mx', demo.operators[0].ports.mx, ['--starttls', 'smtp']], ['https', demo.operators[0].ports.https, []]] as const) {
    const json = `${dir}/ts-${name}.json`;
    try { execFileSync('testssl', ['--quiet', '--warnings', 'off', '--color', '0', '--nodns', 'none', '--add-ca', layout.caBundle, '--jsonfile', json, '--server-defaults', ...extra, `127.0.0.1:${port}`], { stdio: 'ignore', timeout: 1200_000 }); } catch {}
    const f = JSON.parse(readFileSync(json, 'utf8')) as any[];
    console.log(name, JSON.stringify(f.filter((x) => /crl|ocsp|revocation|chain_of_trust/i.test(x.id)).map((x) => [x.id, x.severity, x.finding])));
    console.log(name, 'MEDIUM+', JSON.stringify(f.filter((x) => ['MEDIUM', 'HIGH', 'CRITICAL', 'FATAL'].includes(x.severity)).map((x) => [x.id, x.severity, x.finding])));
  }
} finally { await demo.stop(); cleanup(); }
