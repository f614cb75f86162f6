// Certificates made for a test run with openssl, and a private redis-server that serves TLS
// on them (`--tls-port`; mutual TLS with `--tls-auth-clients yes`). The plain port stays
// open on 127.0.0.1 for the harness's own PING and redis-cli; the code under test uses the
// TLS port. A missing openssl or a redis-server built without TLS fails loudly.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedis, type RedisServer } from './redis-server.ts';

export interface TestCertificates {
  readonly dir: string;
  /** The CA that signed the server's and the client's certificates. */
  readonly caFile: string;
  /** For 127.0.0.1 and the DNS name `redis.test`. */
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A CA nobody trusts, and a client certificate it signed. */
  readonly otherCaFile: string;
  readonly otherClientCertFile: string;
  readonly otherClientKeyFile: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`openssl could not run (${r.error.message}); the TLS tests need it: apt-get install openssl.`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function ca(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=tickbus test ${name}`], dir);
}

function signed(dir: string, name: string, by: string, subject: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.crt`, '-CAkey', `${by}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

/** A CA, a server and a client certificate signed by it, and a stranger's CA and client. */
export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'tickbus-tls-'));
  ca(dir, 'ca');
  ca(dir, 'other-ca');
  signed(dir, 'server', 'ca', '/CN=redis.test', 'subjectAltName=DNS:redis.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed(dir, 'client', 'ca', '/CN=tickbus-client', 'extendedKeyUsage=clientAuth\n');
  signed(dir, 'other-client', 'other-ca', '/CN=stranger', 'extendedKeyUsage=clientAuth\n');
  const f = (name: string) => join(dir, name);
  return {
    dir,
    caFile: f('ca.crt'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
    otherCaFile: f('other-ca.crt'),
    otherClientCertFile: f('other-client.crt'),
    otherClientKeyFile: f('other-client.key'),
  };
}

export interface TlsRedisServer extends RedisServer {
  readonly tlsPort: number;
  /** `rediss://127.0.0.1:<tlsPort>` */
  readonly tlsUrl: string;
}

/** A private redis-server with a TLS port on the certificates; `mutual` requires client certificates. */
export async function startTlsRedis(certs: TestCertificates, options: { mutual: boolean }): Promise<TlsRedisServer> {
  const tlsPort = await freePort();
  const server = await startRedis({
    args: ['--tls-port', String(tlsPort), '--tls-cert-file', certs.serverCertFile, '--tls-key-file', certs.serverKeyFile, '--tls-ca-cert-file', certs.caFile, '--tls-auth-clients', options.mutual ? 'yes' : 'no'],
  });
  return Object.assign(server, { tlsPort, tlsUrl: `rediss://127.0.0.1:${tlsPort}` });
}
