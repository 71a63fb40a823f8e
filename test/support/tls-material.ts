/**
 * Throwaway X.509 material for the TLS tests, made with the openssl CLI
 * (node:crypto makes keys, not certificates): a CA, and leaves it signs for a
 * server (localhost, 127.0.0.1) or a client (clientAuth). Everything lives
 * for two days and its keys only in the test process's memory and a temp
 * dir removed right away.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binaryPath } from './real-proxies.js';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestCa extends Pem {
  /** A leaf signed by this CA. */
  issue(o: { cn: string; use: 'server' | 'client'; passphrase?: string }): Pem;
}

function openssl(dir: string, args: string[]): void {
  const bin = binaryPath('openssl');
  if (!bin) throw new Error('openssl not found (Debian: apt-get install -y openssl)');
  execFileSync(bin, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function inTempDir<T>(fn: (dir: string, read: (f: string) => string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-certs-'));
  try {
    return fn(dir, (f) => fs.readFileSync(path.join(dir, f), 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
let serial = 0x1000 + Math.floor(Math.random() * 0x10000);

export function makeCa(cn: string): TestCa {
  const ca = inTempDir((dir, read) => {
    openssl(dir, ['req', '-x509', ...KEY, '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', `/CN=${cn}`, '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return { cert: read('ca.pem'), key: read('ca.key') };
  });
  return {
    ...ca,
    issue: ({ cn: leaf, use, passphrase }) =>
      inTempDir((dir, read) => {
        fs.writeFileSync(path.join(dir, 'ca.pem'), ca.cert);
        fs.writeFileSync(path.join(dir, 'ca.key'), ca.key, { mode: 0o600 });
        fs.writeFileSync(
          path.join(dir, 'ext'),
          use === 'server'
            ? 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
            : 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n',
        );
        openssl(dir, ['req', ...KEY, '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${leaf}`]);
        openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial++), '-days', '2', '-extfile', 'ext', '-out', 'leaf.pem']);
        if (passphrase) openssl(dir, ['pkey', '-in', 'leaf.key', '-aes-256-cbc', '-passout', `pass:${passphrase}`, '-out', 'leaf.enc.key']);
        return { cert: read('leaf.pem'), key: read(passphrase ? 'leaf.enc.key' : 'leaf.key') };
      }),
  };
}
