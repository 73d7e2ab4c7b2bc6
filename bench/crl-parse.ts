// CRL reading: src/pki/crl.ts (RevocationList) against @peculiar/x509's X509Crl, on a CRL of
// N entries written by OpenSSL (`openssl ca -gencrl`), as a national CA's would be.
//
//   node --import tsx bench/crl-parse.ts [--entries N] [--no-baseline]
//
// Prints the CRL's size, the time to parse it and to look up a serial (absent: the common case,
// a whole scan for X509Crl) with each reader, and the ratio. Needs the `openssl` command.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RevocationList } from '../src/pki/crl.js';
import { x509 } from '../src/pki/x509.js';

const args = process.argv.slice(2);
const entries = Number(args[args.indexOf('--entries') + 1] ?? 0) || 20_000;
const baseline = !args.includes('--no-baseline');
if (!Number.isInteger(entries) || entries < 1 || entries > 1_000_000) {
  console.error('--entries: 1..1000000');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'caducee-crl-bench-'));
try {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-subj', '/CN=Bench CA', '-days', '30'], { stdio: 'ignore' });
  const lines: string[] = [];
  for (let i = 0; i < entries; i++) lines.push(`R\t301231235959Z\t250101000000Z,keyCompromise\t${(0x10000000 + i).toString(16).toUpperCase()}\tunknown\t/CN=x${i}`);
  writeFileSync(join(dir, 'index.txt'), lines.join('\n') + '\n');
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  writeFileSync(join(dir, 'ca.cnf'), '[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\n');
  execFileSync('openssl', ['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'ca.key', '-cert', 'ca.crt', '-out', 'crl.pem'], { cwd: dir, stdio: 'ignore' });
  execFileSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-outform', 'DER', '-out', join(dir, 'crl.der')]);
  const der = readFileSync(join(dir, 'crl.der'));
  const ms = (f: () => unknown) => {
    const t = performance.now();
    f();
    return performance.now() - t;
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

  let crl!: RevocationList;
  const parse = median(Array.from({ length: 5 }, () => ms(() => (crl = RevocationList.parse(der)))));
  if (crl.size !== entries) throw new Error(`RevocationList read ${crl.size} entries, expected ${entries}`);
  const lookup = median(Array.from({ length: 5 }, () => ms(() => crl.findRevoked('01')))) * 1000;
  console.log(`CRL: ${entries} entries, ${der.length} bytes`);
  console.log(`RevocationList   parse ${parse.toFixed(1)} ms (median of 5), absent-serial look-up ${lookup.toFixed(1)} µs`);
  if (baseline) {
    let ref!: x509.X509Crl;
    // The library's default limit (asn1js maxNodes 10,000) refuses such a CRL: lifted for the comparison.
    const refParse = ms(() => (ref = new x509.X509Crl(der, { berOptions: { maxNodes: Infinity, maxContentLength: Infinity } } as never)));
    const refLookup = ms(() => ref.findRevoked('01'));
    console.log(`@peculiar/x509   parse ${refParse.toFixed(1)} ms (once), absent-serial look-up ${(refLookup * 1000).toFixed(1)} µs`);
    console.log(`ratio (X509Crl / RevocationList): parse ${(refParse / parse).toFixed(1)}×, look-up ${((refLookup * 1000) / lookup).toFixed(0)}×`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
