// A throwaway PKI for tests that need TLS (the Kubernetes API stand-in over
// https, client-certificate authentication): a CA, a server certificate for
// 127.0.0.1 and localhost, a client certificate (CN=mirra-test, O=mirra: user
// and group as kube-apiserver's x509 authenticator reads them), and an
// unrelated CA with a client certificate of the same subject, for the
// negative cases. Made with the openssl CLI so the tests need no crypto
// dependency; EC P-256 because its keys are generated at once (RSA takes
// noticeable time); valid for one day, as every run makes its own.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const OPENSSL = '/usr/bin/openssl';
const execFileAsync = promisify(execFile);

/** PEM text and the file it was written to, for the certificate and its key. */
export interface TestCertificate {
  cert: string;
  certPath: string;
  key: string;
  keyPath: string;
}

export interface TestPki {
  /** Signed server and client. */
  ca: TestCertificate;
  /** SAN IP:127.0.0.1, DNS:localhost; extendedKeyUsage serverAuth. */
  server: TestCertificate;
  /** CN=mirra-test, O=mirra; extendedKeyUsage clientAuth. */
  client: TestCertificate;
  /** Unrelated to ca: what it signed must be refused where ca is trusted. */
  otherCa: TestCertificate;
  /** The same subject as client, signed by otherCa. */
  otherClient: TestCertificate;
}

/** Runs the openssl CLI; rejects with its first stderr line. Also used by token-service.ts. */
export async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync(OPENSSL, args);
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    const first = typeof stderr === 'string' ? stderr.split('\n').find((line) => line.trim() !== '') : undefined;
    throw new Error(`openssl ${args[0] ?? ''}: ${first ?? (err as Error).message}`, { cause: err });
  }
}

/** A certificate to make: its subject and extensions, and who signs it (itself when signer is undefined). */
interface CertificateRequest {
  subject: string;
  extensions: string[];
  signer?: TestCertificate;
}

/** A new P-256 key and a certificate for it (dir/name.crt, dir/name.key): self-signed without signer, else signed by signer. */
async function issue(dir: string, name: string, { subject, extensions, signer }: CertificateRequest): Promise<TestCertificate> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  // -config /dev/null: the distribution's openssl.cnf would add its v3_ca
  // extensions (CA:TRUE) to every certificate req -x509 makes, leaves included.
  const args = ['req', '-x509', '-config', '/dev/null', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc'];
  args.push('-days', '1', '-subj', subject, '-keyout', keyPath, '-out', certPath);
  if (signer !== undefined) args.push('-CA', signer.certPath, '-CAkey', signer.keyPath);
  for (const extension of extensions) args.push('-addext', extension);
  await openssl(args);
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { cert, certPath, key, keyPath };
}

const CA_EXTENSIONS = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
const LEAF_EXTENSIONS = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'];
const SERVER_EXTENSIONS = [...LEAF_EXTENSIONS, 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost'];
const CLIENT_EXTENSIONS = [...LEAF_EXTENSIONS, 'extendedKeyUsage=clientAuth'];
const CLIENT_SUBJECT = '/O=mirra/CN=mirra-test';

/** Writes ca, server, client, other-ca and other-client .crt/.key files into dir (which must exist). */
export async function createTestPki(dir: string): Promise<TestPki> {
  const [ca, otherCa] = await Promise.all([
    issue(dir, 'ca', { subject: '/CN=mirra-test-ca', extensions: CA_EXTENSIONS }),
    issue(dir, 'other-ca', { subject: '/CN=mirra-other-ca', extensions: CA_EXTENSIONS }),
  ]);
  const [server, client, otherClient] = await Promise.all([
    issue(dir, 'server', { subject: '/CN=localhost', extensions: SERVER_EXTENSIONS, signer: ca }),
    issue(dir, 'client', { subject: CLIENT_SUBJECT, extensions: CLIENT_EXTENSIONS, signer: ca }),
    issue(dir, 'other-client', { subject: CLIENT_SUBJECT, extensions: CLIENT_EXTENSIONS, signer: otherCa }),
  ]);
  return { ca, server, client, otherCa, otherClient };
}
