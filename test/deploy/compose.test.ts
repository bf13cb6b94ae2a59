/**
 * docker-compose.yml, deploy/compose/replica.yml and the Dockerfile, checked without a Docker
 * engine: the compose files are parsed (./yaml-subset.ts; replica.yml after Compose-style variable
 * substitution, for each REPLICA_ID), every command that runs the image's entrypoint
 * (`node bin/pbft.mjs`) and every documented `docker compose run ... client` command is parsed by
 * the real `pbft` program with recording actions (./cli-dry-run.ts), and the topology is checked:
 * one network identity per replica, the keyring URLs of the documented keygen command are the
 * replicas' hostnames, and no container can read another replica's (or a client's) private key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ClientFlags } from '../../src/cli/client.ts';
import type { ReplicaFlags } from '../../src/cli/replica.ts';
import type { StatusFlags } from '../../src/cli/status.ts';
import { dryRun } from './cli-dry-run.ts';
import { parseYaml, substitute, type Yaml } from './yaml-subset.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCKERFILE = readFileSync(`${ROOT}/Dockerfile`, 'utf8');
const WORKDIR = /^WORKDIR (\S+)$/m.exec(DOCKERFILE)?.[1];

type YamlMap = { [key: string]: Yaml };
const asMap = (v: Yaml | undefined, what: string): YamlMap => {
  assert.ok(v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v), `${what} is a map`);
  return v as YamlMap;
};
const asList = (v: Yaml | undefined, what: string): string[] => {
  assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'), `${what} is a list of strings`);
  return v as string[];
};

interface Mount {
  type: 'bind' | 'volume';
  source: string;
  target: string;
  readOnly: boolean;
}

/** A service's volumes, short ("src:dst[:ro]") or long syntax, normalized. */
function mountsOf(service: YamlMap, what: string): Mount[] {
  const list = service.volumes;
  assert.ok(Array.isArray(list), `${what}.volumes is a list`);
  return list.map((entry, i): Mount => {
    if (typeof entry === 'string') {
      const [source = '', target = '', mode] = entry.split(':');
      const bind = /^[./~]/.test(source);
      return { type: bind ? 'bind' : 'volume', source, target, readOnly: mode === 'ro' };
    }
    const m = asMap(entry, `${what}.volumes[${i}]`);
    assert.ok(m.type === 'bind' || m.type === 'volume', `${what}.volumes[${i}].type is bind or volume`);
    assert.ok(typeof m.source === 'string' && typeof m.target === 'string', `${what}.volumes[${i}] has a source and a target`);
    if (m.type === 'bind' && m.bind !== undefined) {
      // Compose's long syntax does not create a missing source, unless asked to.
      assert.notEqual(asMap(m.bind, 'bind').create_host_path, true, `${what}.volumes[${i}] must not create a missing key file`);
    }
    return { type: m.type, source: m.source, target: m.target, readOnly: m.read_only === true };
  });
}

/** The host's key files a service can read (bind mounts), by file name; a mounted directory is 'DIR'. */
function keyFilesSeen(mounts: Mount[], keysSource: RegExp): string[] {
  return mounts
    .filter((m) => m.type === 'bind')
    .map((m) => {
      const match = keysSource.exec(m.source);
      assert.ok(match !== null, `bind mount ${m.source} comes from the keyring directory`);
      return match[1] === undefined || match[1] === '' ? 'DIR' : match[1];
    });
}

/** Published ports "[ip:]host:container" -> { host, container }. */
function portsOf(service: YamlMap, what: string): Array<{ ip?: string; host: number; container: number }> {
  return asList(service.ports, `${what}.ports`).map((p) => {
    const parts = p.split(':');
    assert.ok(parts.length === 2 || parts.length === 3, `${what}: port ${p} is [ip:]host:container`);
    const container = Number(parts.pop());
    const host = Number(parts.pop());
    return { ...(parts[0] !== undefined ? { ip: parts[0] } : {}), host, container };
  });
}

/** The hardening every replica (and the client) gets: read-only root with a writable /tmp for tsx. */
function checkHardening(service: YamlMap, what: string): void {
  assert.equal(service.read_only, true, `${what}: read-only root file system`);
  assert.ok(asList(service.tmpfs, `${what}.tmpfs`).includes('/tmp'), `${what}: /tmp is a tmpfs (tsx caches there)`);
  assert.deepEqual(service.cap_drop, ['ALL'], `${what}: every capability dropped`);
  assert.ok(asList(service.security_opt, `${what}.security_opt`).includes('no-new-privileges:true'), `${what}: no-new-privileges`);
  assert.equal(service.user, undefined, `${what} runs as the image's (non-root) user`);
}

/** Header comment lines that are commands: `#   docker compose ...` -> `docker compose ...`. */
function documented(source: string, prefix: string): string[] {
  return source
    .split('\n')
    .filter((line) => line.startsWith('#'))
    .map((line) => line.slice(1).replace(/\s+#.*$/, '').trim())
    .filter((line) => line.startsWith(prefix));
}

test('the YAML subset parser', () => {
  const doc = parseYaml(
    ['# comment', 'a:', '  b: "x # not a comment"  # a comment', '  c: ["y", "z"]', '  d:', '    - one', "    - 'two'", 'e: {}', 'f:', 'g:', '  - name: x', '    n: 7001', '    t: true', '  - name: w', '    sub:', '      - 1'].join('\n'),
  );
  assert.deepEqual(doc, {
    a: { b: 'x # not a comment', c: ['y', 'z'], d: ['one', 'two'] },
    e: {},
    f: null,
    g: [{ name: 'x', n: 7001, t: true }, { name: 'w', sub: [1] }],
  });
  assert.deepEqual(parseYaml('a: 15s\nb: "7001"\nc: 0.0.0.0\nd: -1\ne: ws://h:7001\nf: None'), { a: '15s', b: '7001', c: '0.0.0.0', d: -1, e: 'ws://h:7001', f: 'None' });
  assert.throws(() => parseYaml('a: &anchor x'), /unsupported/);
  // What YAML 1.1 (kubectl's parser) and YAML 1.2 read differently is refused.
  assert.throws(() => parseYaml('a: yes'), /YAML 1.1/);
  assert.throws(() => parseYaml('a: 0400'), /octal/);
  assert.throws(() => parseYaml('a:\n  - 22:22'), /base-60/);
  assert.throws(() => parseYaml('a: 1\n---\nb: 2'), /one document/);
});

test('variable substitution', () => {
  assert.equal(substitute('a ${X} ${Y:-d} ${Z-e} $X $$X', { X: '1', Y: '' }), 'a 1 d e 1 $X');
  assert.throws(() => substitute('${X:?set X}', {}), /X: set X/);
  assert.throws(() => substitute('${X:?set X}', { X: '' }), /X: set X/);
  assert.throws(() => substitute('${X}', {}), /X is not set/);
});

test('the dry run rejects what the CLI rejects', async () => {
  await assert.rejects(dryRun(['replica', '--id', '0', '--bogus']), /unknown option '--bogus'/);
  await assert.rejects(dryRun(['replica', '--id', 'x']), /invalid/);
  assert.deepEqual((await dryRun(['replica', '--id', '2'])).command, 'replica');
});

test('docker-compose.yml: one container and one network identity per replica, each seeing only its own key', async () => {
  const source = readFileSync(`${ROOT}/docker-compose.yml`, 'utf8');
  const compose = asMap(parseYaml(source), 'the file');
  const services = asMap(compose.services, 'services');
  const volumes = asMap(compose.volumes, 'volumes');
  const networks = asMap(compose.networks, 'networks');
  const keysSource = /^\.\/keys(?:\/([^/]*))?$/;

  const hostPorts = new Set<number>();
  const dataVolumes = new Set<string>();
  const urls: string[] = [];
  const replicas = Object.keys(services).filter((name) => /^replica\d+$/.test(name));
  assert.equal(replicas.length, 4, 'four replica services');
  for (let id = 0; id < replicas.length; id++) {
    const name = `replica${id}`;
    const service = asMap(services[name], name);
    assert.equal(service.entrypoint, undefined, `${name} runs the image's entrypoint (node bin/pbft.mjs)`);
    const run = await dryRun(asList(service.command, `${name}.command`));
    assert.equal(run.command, 'replica');
    const flags = run.flags as ReplicaFlags;
    assert.equal(flags.id, id, `${name} runs replica ${id}`);
    assert.equal(flags.keys, '/keys');
    assert.equal(flags.data, '/data');

    // Its own network identity: a hostname on a user-defined bridge network, no shared namespace.
    assert.equal(service.network_mode, undefined, `${name} has its own network namespace`);
    assert.equal(service.hostname, name, `${name}'s hostname is its service name`);
    const nets = asList(service.networks, `${name}.networks`);
    assert.deepEqual(nets, ['pbft'], `${name} is on the network pbft`);
    assert.equal(asMap(networks.pbft, 'networks.pbft').driver, 'bridge', 'pbft is a user-defined bridge network');

    // It listens on every interface of its container, on the port its URL names, published on the
    // host (127.0.0.1:7001+id) for /status.
    assert.equal(flags.listen?.host, '0.0.0.0', `${name} listens on every interface (published ports reach it)`);
    const port = flags.listen.port ?? 7001;
    urls.push(`ws://${name}:${port}`);
    const published = portsOf(service, name);
    assert.equal(published.length, 1);
    assert.equal(published[0]!.container, port, `${name}: the published port is the one it listens on`);
    assert.equal(published[0]!.host, 7001 + id, `${name}'s /status is at host port ${7001 + id}`);
    assert.equal(published[0]!.ip, '127.0.0.1', `${name}'s port is published on the host's loopback only`);
    assert.ok(!hostPorts.has(published[0]!.host));
    hostPorts.add(published[0]!.host);

    // The keyring: cluster.json and its own key, read-only, and nothing else of ./keys.
    const mounts = mountsOf(service, name);
    assert.deepEqual(keyFilesSeen(mounts, keysSource).sort(), ['cluster.json', `replica-${id}.key`], `${name} sees cluster.json and its own key only`);
    for (const m of mounts.filter((x) => x.type === 'bind')) {
      assert.equal(m.readOnly, true, `${name} mounts ${m.source} read-only`);
      assert.equal(m.target, `${flags.keys}/${m.source.split('/').pop()}`, `${name} finds ${m.source} in --keys ${flags.keys}`);
    }
    const data = mounts.find((m) => m.target === '/data');
    assert.ok(data !== undefined && data.type === 'volume' && data.source in volumes, `${name}'s data is a named volume`);
    assert.ok(!dataVolumes.has(data.source), `${name} has its own data volume`);
    dataVolumes.add(data.source);
    checkHardening(service, name);
  }

  // The documented keyring: its URLs are the replicas' hostnames and ports, in id order.
  const keygen = documented(source, 'npx pbft keygen ');
  assert.equal(keygen.length, 1, 'the header shows one keygen command');
  assert.equal(/--replica-urls (\S+)/.exec(keygen[0]!)?.[1], urls.join(','), 'keygen --replica-urls names the replicas by hostname');

  // The client service: in the network, not started by `up`, only the client's key.
  const client = asMap(services.client, 'client');
  assert.deepEqual(client.profiles, ['tools'], 'docker compose up does not start the client');
  assert.deepEqual(client.networks, ['pbft']);
  assert.equal(client.depends_on, undefined, 'running a client does not restart a stopped replica');
  assert.equal(client.entrypoint, undefined, 'the client service runs the pbft CLI');
  const clientMounts = mountsOf(client, 'client');
  assert.deepEqual(keyFilesSeen(clientMounts, keysSource).sort(), ['client-0.key', 'cluster.json'], 'the client sees cluster.json and client 0\'s key only');
  assert.ok(WORKDIR !== undefined, 'the Dockerfile sets WORKDIR');
  for (const m of clientMounts) {
    assert.equal(m.readOnly, true);
    assert.equal(m.target, `${WORKDIR}/keys/${m.source.split('/').pop()}`, 'where the CLI\'s default --keys keys finds it');
  }
  checkHardening(client, 'client');
  const runs = documented(source, 'docker compose run --rm client ');
  assert.ok(runs.length >= 3, 'the header shows client commands');
  for (const line of [...runs, 'docker compose run --rm client ' + asList(client.command, 'client.command').join(' ')]) {
    const run = await dryRun(line.slice('docker compose run --rm client '.length).split(/\s+/));
    assert.ok(run.command === 'client' || run.command === 'status', line);
    const keys = run.command === 'client' ? (run.flags as [unknown, ClientFlags])[1].keys : (run.flags as StatusFlags).keys;
    assert.equal(keys, 'keys', `${line}: reads the keyring the service mounts`);
  }

  // Every other service that runs the CLI must be accepted as well; no service shares a network namespace.
  for (const [name, value] of Object.entries(services)) {
    const service = asMap(value, name);
    assert.equal(service.network_mode, undefined, `${name} has no network_mode`);
    if (service.entrypoint !== undefined || service.command === undefined) continue;
    await dryRun(asList(service.command, `${name}.command`));
  }
});

test('deploy/compose/replica.yml: one replica per machine, for every REPLICA_ID', async () => {
  const source = readFileSync(`${ROOT}/deploy/compose/replica.yml`, 'utf8');
  assert.throws(() => substitute(source, {}), /REPLICA_ID/, 'REPLICA_ID must be set');
  const keygen = documented(source, 'npx pbft keygen ');
  assert.equal(keygen.length, 1, 'the header shows one keygen command');
  const urls = /--replica-urls (\S+)/.exec(keygen[0]!)?.[1]?.split(',') ?? [];
  assert.equal(urls.length, 4);
  assert.ok(documented(source, 'REPLICA_ID=2 docker compose -f deploy/compose/replica.yml up').length === 1, 'the header shows how a machine starts its replica');

  for (let id = 0; id < urls.length; id++) {
    const compose = asMap(parseYaml(substitute(source, { REPLICA_ID: String(id) })), `replica.yml with REPLICA_ID=${id}`);
    const services = asMap(compose.services, 'services');
    assert.deepEqual(Object.keys(services), ['replica'], 'one service');
    const service = asMap(services.replica, 'replica');
    assert.equal(service.entrypoint, undefined);
    assert.equal(service.network_mode, undefined);
    const run = await dryRun(asList(service.command, 'replica.command'));
    assert.equal(run.command, 'replica');
    const flags = run.flags as ReplicaFlags;
    assert.equal(flags.id, id, `REPLICA_ID=${id} runs replica ${id}`);
    assert.equal(flags.keys, '/keys');
    assert.equal(flags.data, '/data');
    assert.equal(flags.listen?.host, '0.0.0.0');

    // The machine's port 7001 (the URL's port) reaches the port the replica listens on.
    const [published, ...more] = portsOf(service, 'replica');
    assert.equal(more.length, 0);
    assert.equal(published!.container, flags.listen.port ?? 7001, 'the published port is the one it listens on');
    assert.equal(published!.host, Number(new URL(urls[id]!).port), `the machine publishes the port of replica ${id}'s URL`);

    const mounts = mountsOf(service, 'replica');
    assert.deepEqual(keyFilesSeen(mounts, /^\.\.\/\.\.\/keys(?:\/([^/]*))?$/).sort(), ['cluster.json', `replica-${id}.key`], `machine ${id} mounts cluster.json and its own key only`);
    for (const m of mounts.filter((x) => x.type === 'bind')) {
      assert.equal(m.readOnly, true);
      assert.equal(m.target, `/keys/${m.source.split('/').pop()}`);
    }
    const data = mounts.find((m) => m.target === '/data');
    assert.ok(data !== undefined && data.type === 'volume' && data.source in asMap(compose.volumes, 'volumes'), 'data is a named volume');
    checkHardening(service, 'replica');
  }
  // PBFT_KEYS and PBFT_PORT override the defaults.
  const moved = asMap(asMap(parseYaml(substitute(source, { REPLICA_ID: '1', PBFT_KEYS: '/etc/pbft', PBFT_PORT: '7101' })), 'file').services, 'services');
  const service = asMap(moved.replica, 'replica');
  assert.deepEqual(keyFilesSeen(mountsOf(service, 'replica'), /^\/etc\/pbft(?:\/([^/]*))?$/).sort(), ['cluster.json', 'replica-1.key']);
  assert.equal(portsOf(service, 'replica')[0]!.host, 7101);
});

test('Dockerfile: node:20-slim, npm ci, entrypoint node bin/pbft.mjs, non-root with a writable /data', () => {
  assert.match(DOCKERFILE, /^FROM node:20-slim$/m);
  assert.match(DOCKERFILE, /^RUN npm ci\b/m);
  assert.match(DOCKERFILE, /^ENTRYPOINT \["node", "bin\/pbft\.mjs"\]$/m);
  assert.equal(WORKDIR, '/app');
  for (const path of ['bin', 'src', 'package.json', 'package-lock.json']) assert.match(DOCKERFILE, new RegExp(`^COPY .*\\b${path.replace('.', '\\.')}\\b`, 'm'), `copies ${path}`);
  const user = /^USER (\d+)(?::(\d+))?$/m.exec(DOCKERFILE);
  assert.ok(user !== null && Number(user[1]) > 0, 'runs as a numeric non-root user (Kubernetes runAsNonRoot can check it)');
  // /data belongs to that user before VOLUME (changes after VOLUME are discarded), and USER comes last.
  const chown = DOCKERFILE.search(new RegExp(`^RUN .*chown ${user[1]}(?::${user[2] ?? '\\d+'})? /data\\b`, 'm'));
  const volume = DOCKERFILE.search(/^VOLUME \["\/data"\]$/m);
  assert.ok(chown >= 0 && volume > chown, '/data is chowned to the user, then declared a volume');
  assert.ok(DOCKERFILE.search(/^USER /m) > volume && !/^(RUN|COPY)\b/m.test(DOCKERFILE.slice(DOCKERFILE.search(/^USER /m))), 'USER after the build steps');
});
