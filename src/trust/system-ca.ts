/**
 * The operating system's CA certificates and Node's own default ones, read
 * the way the running Node can:
 * - Node ≥ 22.15 / ≥ 23.10 has `tls.getCACertificates()`: `'system'` is the
 *   OS store Node itself uses for `--use-system-ca` (on Linux OpenSSL's
 *   default file and directory, which `SSL_CERT_FILE` / `SSL_CERT_DIR`
 *   override), `'default'` what a TLS client trusts by default (bundled
 *   Mozilla roots, NODE_EXTRA_CA_CERTS, the OS store under --use-system-ca).
 * - Node 20 (and 22 before 22.15) has neither: the OS bundle file is read —
 *   `SSL_CERT_FILE` if set, else the first of the usual bundle paths — and
 *   Node's default is `tls.rootCertificates` plus the NODE_EXTRA_CA_CERTS
 *   file, which Node read at start-up and no API returns.
 * Read once per process on first use (the store is large: parsing it is what
 * costs, see trust.ts).
 */
import fs from 'node:fs';
import * as tls from 'node:tls';

type GetCACertificates = (type?: 'default' | 'system' | 'bundled' | 'extra') => string[];
const getCACertificates = (tls as unknown as { getCACertificates?: GetCACertificates }).getCACertificates;

/** Whether this Node reads the OS store itself (tls.getCACertificates('system')). */
export const NODE_READS_SYSTEM_STORE = typeof getCACertificates === 'function';

/** Where distributions keep the PEM bundle of their trusted CAs (the paths Go's crypto/x509 tries). */
export const SYSTEM_BUNDLES: readonly string[] = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Gentoo, Arch
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL 6
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/pki/tls/cacert.pem', // OpenELEC
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7+
  '/etc/ssl/cert.pem', // Alpine, macOS, FreeBSD
];

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

export function splitPem(text: string): string[] {
  return (text.match(PEM_CERTIFICATE) ?? []).map((c) => `${c}\n`);
}

export interface SystemStore {
  readonly certificates: readonly string[];
  /** Where they came from, for the warning when there are none. */
  readonly source: string;
}

/** The OS's CA certificates (see the file comment for how each Node gets them). */
export function readSystemStore(env: NodeJS.ProcessEnv = process.env): SystemStore {
  if (getCACertificates) return { certificates: getCACertificates('system'), source: "Node's system store (tls.getCACertificates('system'))" };
  return readSystemBundle(env);
}

/** Node 20's way: the PEM bundle file, `SSL_CERT_FILE` or the first of SYSTEM_BUNDLES that exists. */
export function readSystemBundle(env: NodeJS.ProcessEnv = process.env): SystemStore {
  const file = env.SSL_CERT_FILE || SYSTEM_BUNDLES.find((f) => fs.existsSync(f));
  if (!file) return { certificates: [], source: `no CA bundle (SSL_CERT_FILE unset, none of ${SYSTEM_BUNDLES.join(', ')})` };
  try {
    return { certificates: splitPem(fs.readFileSync(file, 'utf8')), source: file };
  } catch (err) {
    return { certificates: [], source: `${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})` };
  }
}

/** What a Node TLS client trusts when given no `ca`. */
export function nodeDefaultCertificates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (getCACertificates) return getCACertificates('default');
  const extra = env.NODE_EXTRA_CA_CERTS;
  let extras: string[] = [];
  if (extra) {
    try {
      extras = splitPem(fs.readFileSync(extra, 'utf8'));
    } catch {
      // Node warned about it at start-up and trusts none of it either.
    }
  }
  return [...tls.rootCertificates, ...extras];
}
