/**
 * deploy/k8s/, checked without a cluster: the committed YAML is what scripts/k8s-manifests.ts
 * generates; each file, read back by an independent parser (./yaml-subset.ts), is the generator's
 * object and is valid against the Kubernetes OpenAPI schemas (kubernetes-models, offline); every
 * container command runs through the real `pbft` CLI parser; and the security properties hold on
 * what was read from the files: each pod mounts exactly one Secret, its own; the replicas run
 * non-root on a read-only root file system; the URLs of the documented keygen command are the pods'
 * DNS names (StatefulSet name + '-0.' + serviceName); the documented kubectl commands create the
 * ConfigMap and Secrets under the names and keys the pods mount.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StatefulSet, type IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { Pod, type IPod } from 'kubernetes-models/v1/Pod';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { Service, type IService } from 'kubernetes-models/v1/Service';
import type { ClientFlags } from '../../src/cli/client.ts';
import type { ReplicaFlags } from '../../src/cli/replica.ts';
import type { StatusFlags } from '../../src/cli/status.ts';
import { committedManifestPaths, K8S_DIR, keygenCommand, manifests, REPLICAS } from '../../scripts/k8s-manifests.ts';
import { dryRun } from './cli-dry-run.ts';
import { parseYaml } from './yaml-subset.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = readFileSync(`${ROOT}/${K8S_DIR}/README.md`, 'utf8');
const DOCKERFILE = readFileSync(`${ROOT}/Dockerfile`, 'utf8');

type K8sObject = IStatefulSet | IService | IPodDisruptionBudget | IPod;

/** Every committed manifest, as read from its file. */
const files: Array<{ path: string; object: K8sObject }> = committedManifestPaths(ROOT).map((path) => ({
  path,
  object: parseYaml(readFileSync(`${ROOT}/${path}`, 'utf8')) as unknown as K8sObject,
}));
const ofKind = <T extends K8sObject>(kind: T['kind']): T[] => files.map((f) => f.object).filter((o): o is T => o.kind === kind);

function validate(object: K8sObject): void {
  switch (`${object.apiVersion}/${object.kind}`) {
    case 'apps/v1/StatefulSet':
      return new StatefulSet(object as IStatefulSet).validate();
    case 'v1/Service':
      return new Service(object as IService).validate();
    case 'policy/v1/PodDisruptionBudget':
      return new PodDisruptionBudget(object as IPodDisruptionBudget).validate();
    case 'v1/Pod':
      return new Pod(object as IPod).validate();
    default:
      assert.fail(`no schema checked for ${object.apiVersion} ${object.kind}`);
  }
}

/** The Dockerfile's working directory and numeric USER (uid). */
const WORKDIR = /^WORKDIR (\S+)$/m.exec(DOCKERFILE)?.[1];
const IMAGE_UID = Number(/^USER (\d+)(?::\d+)?$/m.exec(DOCKERFILE)?.[1]);

/** Command lines in README code blocks that start with `prefix` (trailing comments removed). */
function documented(prefix: string): string[] {
  return README.split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line.startsWith(prefix));
}

const allContainers = (spec: IPodSpec): IContainer[] => [...(spec.initContainers ?? []), ...spec.containers];

/** Every Secret a pod can read: volumes (also projected), env and envFrom. */
function secretsOf(spec: IPodSpec): Array<{ name: string; keys: string[] | 'all' }> {
  const found: Array<{ name: string; keys: string[] | 'all' }> = [];
  for (const v of spec.volumes ?? []) {
    if (v.secret !== undefined) found.push({ name: v.secret.secretName ?? '', keys: v.secret.items?.map((i) => i.key) ?? 'all' });
    for (const source of v.projected?.sources ?? []) {
      if (source.secret !== undefined) found.push({ name: source.secret.name ?? '', keys: source.secret.items?.map((i) => i.key) ?? 'all' });
    }
  }
  for (const c of allContainers(spec)) {
    for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef !== undefined) found.push({ name: e.valueFrom.secretKeyRef.name ?? '', keys: [e.valueFrom.secretKeyRef.key] });
    for (const e of c.envFrom ?? []) if (e.secretRef !== undefined) found.push({ name: e.secretRef.name ?? '', keys: 'all' });
  }
  return found;
}

/** The one key file a pod holds: the Secret it mounts must be exactly that, and its copy too. */
function checkKeyring(spec: IPodSpec, keyFile: string, secretName: string, keysDir: string, what: string): IContainer {
  assert.deepEqual(secretsOf(spec), [{ name: secretName, keys: [keyFile] }], `${what} can read exactly one Secret, ${secretName}, and of it only ${keyFile}`);
  const cluster = (spec.volumes ?? []).filter((v) => v.configMap !== undefined);
  assert.equal(cluster.length, 1, `${what} mounts one ConfigMap`);
  assert.deepEqual(cluster[0]!.configMap!.items?.map((i) => i.key), ['cluster.json'], `${what} takes cluster.json from it`);
  // The main container reads /keys (or /app/keys) from a volume that init containers fill from
  // the ConfigMap and the Secret; the key file named there must be its own and no other.
  const main = spec.containers[0]!;
  const keysMount = main.volumeMounts?.find((m) => m.mountPath === keysDir);
  assert.ok(keysMount !== undefined, `${what} mounts its keyring at ${keysDir}`);
  assert.equal(keysMount.readOnly, true, `${what}'s keyring is mounted read-only`);
  const volume = spec.volumes?.find((v) => v.name === keysMount.name);
  assert.ok(volume?.emptyDir !== undefined, `${what}'s keyring is an emptyDir filled at start`);
  assert.equal(volume.emptyDir.medium, 'Memory', `${what}'s copy of its private key stays off disk`);
  const fillers = (spec.initContainers ?? []).filter((c) => c.volumeMounts?.some((m) => m.name === keysMount.name && m.readOnly !== true));
  assert.equal(fillers.length, 1, `one init container fills ${what}'s keyring`);
  const script = [...(fillers[0]!.command ?? []), ...(fillers[0]!.args ?? [])].join(' ');
  const named = script.match(/(?:replica|client)-\d+\.key/g) ?? [];
  assert.ok(named.length > 0 && named.every((k) => k === keyFile), `${what}'s init container copies ${keyFile} only: ${script}`);
  assert.match(script, new RegExp(`install -m 0600 \\S+/${keyFile.replace('.', '\\.')} `), `${what}'s copy of ${keyFile} has mode 0600 (pbft refuses a group-readable key)`);
  for (const c of allContainers(spec)) {
    for (const m of c.volumeMounts ?? []) {
      const v = spec.volumes?.find((x) => x.name === m.name);
      if (v?.secret !== undefined || v?.configMap !== undefined) assert.equal(m.readOnly, true, `${what}: ${c.name} mounts ${m.name} read-only`);
    }
  }
  return main;
}

function checkSecurity(spec: IPodSpec, what: string): void {
  const pod = spec.securityContext ?? {};
  assert.equal(pod.runAsNonRoot, true, `${what}: runAsNonRoot`);
  assert.ok(Number.isInteger(IMAGE_UID) && IMAGE_UID > 0, 'the Dockerfile sets a numeric non-root USER');
  assert.equal(pod.runAsUser, IMAGE_UID, `${what} runs as the image's user`);
  assert.equal(pod.fsGroup, IMAGE_UID, `${what}: the data volume is writable by the image's user`);
  assert.equal(spec.automountServiceAccountToken, false, `${what} gets no service account token`);
  for (const c of allContainers(spec)) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.allowPrivilegeEscalation, false, `${what}/${c.name}: no privilege escalation`);
    assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${what}/${c.name}: every capability dropped`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${what}/${c.name}: read-only root file system`);
    // Where pbft runs (the image's entrypoint, or `kubectl exec ... node bin/pbft.mjs`), tsx needs a writable /tmp.
    if (spec.containers.includes(c)) assert.ok(c.volumeMounts?.some((m) => m.mountPath === '/tmp') === true, `${what}/${c.name}: /tmp is writable (tsx caches there)`);
    assert.ok(c.resources?.requests?.cpu !== undefined && c.resources.requests.memory !== undefined, `${what}/${c.name}: CPU and memory requests`);
    assert.equal(c.image, 'pbft-kv:latest', `${what}/${c.name}: the image`);
  }
}

function checkProbe(probe: IProbe | undefined, container: IContainer, port: number, what: string): void {
  assert.ok(probe?.httpGet !== undefined, `${what} is an HTTP GET`);
  assert.equal(probe.httpGet.path, '/status', `${what}: GET /status`);
  const target = probe.httpGet.port;
  const resolved = typeof target === 'number' ? target : container.ports?.find((p) => p.name === target)?.containerPort;
  assert.equal(resolved, port, `${what} on the replica's port ${port}`);
}

test('deploy/k8s holds exactly what scripts/k8s-manifests.ts generates (npm run k8s:manifests)', () => {
  const generated = manifests();
  assert.deepEqual(files.map((f) => f.path), generated.map((m) => m.path).sort(), 'no missing or stale manifest');
  for (const m of generated) assert.equal(readFileSync(`${ROOT}/${m.path}`, 'utf8'), m.text, `${m.path} is up to date`);
  // The independent parser reads each file back as the generator's object.
  for (const m of generated) assert.deepEqual(files.find((f) => f.path === m.path)!.object, JSON.parse(JSON.stringify(m.object)), `${m.path} means what was generated`);
});

test('every manifest is valid against the Kubernetes OpenAPI schemas', () => {
  for (const { path, object } of files) {
    assert.doesNotThrow(() => validate(object), `${path}`);
  }
  // The validator works offline and does reject: a string port and a container without a name.
  const broken = JSON.parse(JSON.stringify(ofKind<IStatefulSet>('StatefulSet')[0])) as IStatefulSet;
  (broken.spec!.template.spec!.containers[0]!.ports![0] as { containerPort: unknown }).containerPort = '7001';
  assert.throws(() => validate(broken), /containerPort must be integer/);
  delete (broken.spec!.template.spec!.containers[0] as { name?: string }).name;
  assert.throws(() => validate(broken), /name/);
});

test('headless Service and PodDisruptionBudget', () => {
  const [service, ...others] = ofKind<IService>('Service');
  assert.equal(others.length, 0);
  assert.equal(service!.spec?.clusterIP, 'None', 'the Service is headless');
  assert.equal(service!.spec?.publishNotReadyAddresses, true, 'starting replicas can resolve each other');
  assert.deepEqual(service!.spec?.ports?.map((p) => [p.name, p.port]), [['ws', 7001]]);
  const [pdb] = ofKind<IPodDisruptionBudget>('PodDisruptionBudget');
  const f = (REPLICAS - 1) / 3;
  assert.equal(pdb?.spec?.minAvailable, 2 * f + 1, 'drains keep 2f+1 replicas');
  assert.deepEqual(pdb?.spec?.selector?.matchLabels, service!.spec?.selector, 'the budget covers the replicas');
});

test('one StatefulSet per replica: its own Secret only, its id, probes on /status, non-root', async () => {
  const [service] = ofKind<IService>('Service');
  const sets = ofKind<IStatefulSet>('StatefulSet');
  assert.equal(sets.length, REPLICAS);
  assert.ok(REPLICAS >= 4 && (REPLICAS - 1) % 3 === 0, 'n = 3f+1');
  const names = new Set<string>();
  for (const set of sets) {
    const name = set.metadata!.name!;
    const spec = set.spec!;
    const pod = spec.template.spec!;
    assert.equal(spec.replicas, 1, `${name}: one pod`);
    assert.equal(spec.serviceName, service!.metadata!.name, `${name}: pods named under the headless Service`);
    const labels = spec.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(spec.selector.matchLabels ?? {})) assert.equal(labels[k], v, `${name}: its selector matches its pods`);
    for (const [k, v] of Object.entries(service!.spec!.selector ?? {})) assert.equal(labels[k], v, `${name}: the Service selects its pod`);
    for (const other of sets) {
      if (other === set) continue;
      const sel = other.spec!.selector.matchLabels ?? {};
      assert.ok(Object.entries(sel).some(([k, v]) => labels[k] !== v), `${name}'s pod is not selected by ${other.metadata!.name}`);
    }

    const main = pod.containers.find((c) => c.name === 'replica');
    assert.ok(main !== undefined && pod.containers.length === 1, `${name}: one container, the replica`);
    assert.equal(main.command, undefined, `${name} runs the image's entrypoint (node bin/pbft.mjs)`);
    const run = await dryRun(main.args ?? []);
    assert.equal(run.command, 'replica');
    const flags = run.flags as ReplicaFlags;
    assert.equal(name, `pbft-${flags.id}`, `${name} runs replica ${flags.id}`);
    assert.ok(!names.has(name));
    names.add(name);
    assert.equal(flags.keys, '/keys');
    assert.equal(flags.data, '/data');
    assert.equal(flags.listen?.host, '0.0.0.0', `${name} listens on every interface`);
    const port = main.ports?.find((p) => p.name === 'ws')?.containerPort;
    assert.equal(port, 7001);
    assert.ok(flags.listen.port === undefined || flags.listen.port === port);
    assert.equal(service!.spec!.ports![0]!.port, port, `${name}: the Service's port is the replica's`);

    checkKeyring(pod, `replica-${flags.id}.key`, `pbft-replica-${flags.id}-key`, flags.keys, name);
    checkSecurity(pod, name);
    checkProbe(main.startupProbe, main, port, `${name}'s startup probe`);
    checkProbe(main.readinessProbe, main, port, `${name}'s readiness probe`);
    checkProbe(main.livenessProbe, main, port, `${name}'s liveness probe`);

    const data = main.volumeMounts?.find((m) => m.mountPath === flags.data);
    assert.ok(data !== undefined && spec.volumeClaimTemplates?.some((t) => t.metadata?.name === data.name), `${name}: /data is a PersistentVolumeClaim of its own`);
    assert.notEqual(data.readOnly, true);
  }
  assert.deepEqual([...names].sort(), Array.from({ length: REPLICAS }, (_, i) => `pbft-${i}`), 'replicas 0..n-1, each once');
});

test('the client pod: client 0 key only, the CLI finds the keyring by its default --keys', () => {
  const [client] = ofKind<IPod>('Pod');
  assert.ok(client !== undefined);
  assert.ok(WORKDIR !== undefined, 'the Dockerfile sets WORKDIR');
  checkKeyring(client.spec!, 'client-0.key', 'pbft-client-0-key', `${WORKDIR}/keys`, 'the client pod');
  checkSecurity(client.spec!, 'the client pod');
  assert.notEqual(client.metadata?.labels?.['app.kubernetes.io/component'], 'replica', 'the client pod is not one of the Service\'s replicas');
});

test('deploy/k8s/README.md: keygen URLs are the pods\' DNS names; the kubectl commands make what the pods mount', async () => {
  const sets = ofKind<IStatefulSet>('StatefulSet');
  const keygen = documented('npx pbft keygen ');
  assert.equal(keygen.length, 1, 'one keygen command');
  assert.equal(keygen[0], keygenCommand(), 'the README shows the generator\'s keygen command');
  const urls = /--replica-urls (\S+)/.exec(keygen[0]!)?.[1]?.split(',') ?? [];
  const expected = [...sets]
    .sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!, 'en', { numeric: true }))
    .map((set) => `ws://${set.metadata!.name}-0.${set.spec!.serviceName}:${set.spec!.template.spec!.containers[0]!.ports![0]!.containerPort}`);
  assert.deepEqual(urls, expected, 'URL i is pod 0 of StatefulSet pbft-i under the Service, at the replica\'s port');

  // kubectl create configmap / secret: the names and keys the pods mount.
  const created = new Map<string, string>(); // "configmap NAME" / "secret NAME" -> file name (the data key)
  for (const line of documented('kubectl create ')) {
    const m = /^kubectl create (configmap|secret generic) (\S+) --from-file=keys\/(\S+)$/.exec(line);
    assert.ok(m !== null, `understood: ${line}`);
    created.set(`${m[1]!.split(' ')[0]} ${m[2]}`, m[3]!);
  }
  for (const { object } of files) {
    const spec = object.kind === 'StatefulSet' ? object.spec!.template.spec! : object.kind === 'Pod' ? object.spec! : undefined;
    if (spec === undefined) continue;
    for (const v of spec.volumes ?? []) {
      if (v.configMap !== undefined) assert.equal(created.get(`configmap ${v.configMap.name}`), 'cluster.json', `the README creates ConfigMap ${v.configMap.name}`);
      if (v.secret !== undefined) assert.equal(created.get(`secret ${v.secret.secretName}`), v.secret.items![0]!.key, `the README creates Secret ${v.secret.secretName} with key ${v.secret.items![0]!.key}`);
    }
  }
  assert.ok(documented('kubectl apply -f deploy/k8s/').length > 0, 'the README applies the directory');

  // Every `node bin/pbft.mjs ...` run through kubectl exec parses, and finds its keyring.
  const execs = documented('kubectl exec ');
  assert.ok(execs.length >= 4);
  for (const line of execs) {
    const m = /^kubectl exec (\S+)(?: -c (\S+))? -- node bin\/pbft\.mjs (.+)$/.exec(line);
    assert.ok(m !== null, `understood: ${line}`);
    const run = await dryRun(m[3]!.split(/\s+/));
    const keys = run.command === 'client' ? (run.flags as [unknown, ClientFlags])[1].keys : (run.flags as StatusFlags).keys;
    if (m[1] === 'pbft-client') assert.equal(keys, 'keys', `${line}: relative to ${WORKDIR}, where the client pod mounts its keyring`);
    else {
      assert.ok(sets.some((s) => m[1] === `${s.metadata!.name}-0`), `${line}: a replica's pod`);
      assert.equal(m[2], 'replica', `${line}: names the replica container`);
      assert.equal(keys, '/keys', `${line}: the replica's keyring`);
      assert.equal(run.command, 'status', 'a replica pod has no client key: status only');
    }
  }
});
