#!/usr/bin/env -S node --import tsx
/**
 * Generates the Kubernetes manifests in deploy/k8s/ (see deploy/k8s/README.md):
 *
 *   npm run k8s:manifests               (re)write deploy/k8s/*.yaml and deploy/k8s/tools/*.yaml
 *   npm run k8s:manifests -- --check    exit 1 if a committed file differs from what this makes
 *
 * One StatefulSet per replica (pbft-0 .. pbft-3, one pod each) rather than one StatefulSet of four:
 * a pod template cannot differ by ordinal, and each pod must mount only its own replica's Secret.
 * Every object is typed with the kubernetes-models interfaces, so `tsc` rejects a misspelt field;
 * test/deploy/k8s.test.ts checks the committed files against this generator, the Kubernetes
 * OpenAPI schemas and the security properties. Edit this file, not the YAML.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IAffinity } from 'kubernetes-models/v1/Affinity';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IVolume } from 'kubernetes-models/v1/Volume';

/** n = 3f + 1 replicas. Changing F regenerates n StatefulSets (and the keyring needs n URLs). */
export const F = 1;
export const REPLICAS = 3 * F + 1;
/** The headless Service: pod DNS names are <pod>.<SERVICE>, e.g. pbft-0-0.pbft. */
export const SERVICE = 'pbft';
/** The replica's port: WebSocket (peers, clients) and HTTP GET /status, /metrics. */
export const PORT = 7001;
export const IMAGE = 'pbft-kv:latest';
/** The ConfigMap holding cluster.json (kubectl create configmap pbft-cluster --from-file=keys/cluster.json). */
export const CLUSTER_CONFIGMAP = 'pbft-cluster';
/** The Dockerfile's user: `node`, uid and gid 1000. */
export const UID = 1000;

export const statefulSetName = (id: number): string => `${SERVICE}-${id}`;
/** One Secret per private key: kubectl create secret generic pbft-replica-0-key --from-file=keys/replica-0.key */
export const replicaSecretName = (id: number): string => `${SERVICE}-replica-${id}-key`;
export const clientSecretName = (id: number): string => `${SERVICE}-client-${id}-key`;
/** The stable DNS name of replica `id`'s pod (ordinal 0 of its StatefulSet), short form: resolves in the same namespace. */
export const podDnsName = (id: number): string => `${statefulSetName(id)}-0.${SERVICE}`;
export const replicaUrl = (id: number): string => `ws://${podDnsName(id)}:${PORT}`;
/** The keygen command whose URLs match the pods (documented in deploy/k8s/README.md). */
export const keygenCommand = (): string =>
  `npx pbft keygen --out keys --replica-urls ${Array.from({ length: REPLICAS }, (_, id) => replicaUrl(id)).join(',')}`;

const NAME = 'app.kubernetes.io/name';
const COMPONENT = 'app.kubernetes.io/component';
const INSTANCE = 'app.kubernetes.io/instance';
const replicaPods = { [NAME]: SERVICE, [COMPONENT]: 'replica' };

// ------------------------------------------------------------------------------------------------
// The objects

const podSecurity: IPodSecurityContext = {
  runAsNonRoot: true,
  runAsUser: UID,
  runAsGroup: UID,
  // Makes the data volume writable by uid 1000. It also makes Secret files group-readable (mode
  // 0440 whatever defaultMode says), which the keyring refuses for a private key: hence the copy.
  fsGroup: UID,
  fsGroupChangePolicy: 'OnRootMismatch',
  seccompProfile: { type: 'RuntimeDefault' },
};

const containerSecurity: ISecurityContext = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/**
 * Copies cluster.json (ConfigMap) and the pod's one private key (Secret) into an in-memory
 * emptyDir, the key with mode 0600 and owned by uid 1000, as `pbft` requires of a private key.
 */
function keyringInit(keyFile: string): IContainer {
  return {
    name: 'keyring',
    image: IMAGE,
    imagePullPolicy: 'IfNotPresent',
    command: ['sh', '-c', `install -m 0644 /keyring/cluster.json /keys/cluster.json && install -m 0600 /secret/${keyFile} /keys/${keyFile}`],
    resources: { requests: { cpu: '10m', memory: '16Mi' } },
    securityContext: containerSecurity,
    volumeMounts: [
      { name: 'cluster', mountPath: '/keyring', readOnly: true },
      { name: 'key', mountPath: '/secret', readOnly: true },
      { name: 'keys', mountPath: '/keys' },
    ],
  };
}

function keyringVolumes(secretName: string, keyFile: string): IVolume[] {
  return [
    { name: 'cluster', configMap: { name: CLUSTER_CONFIGMAP, items: [{ key: 'cluster.json', path: 'cluster.json' }] } },
    { name: 'key', secret: { secretName, defaultMode: 0o400, items: [{ key: keyFile, path: keyFile }] } },
    { name: 'keys', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
    // The root file system is read-only; tsx (which runs the TypeScript sources) caches in /tmp.
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
  ];
}

const statusProbe = (timing: Omit<IProbe, 'httpGet'>): IProbe => ({ httpGet: { path: '/status', port: 'ws' }, ...timing });

/** Prefer one replica per node: a node failure then takes at most one replica (f = 1). */
const spreadReplicas: IAffinity = {
  podAntiAffinity: {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: replicaPods } } },
    ],
  },
};

export function replicaStatefulSet(id: number): IStatefulSet {
  const name = statefulSetName(id);
  const labels = { ...replicaPods, [INSTANCE]: name };
  const keyFile = `replica-${id}.key`;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, labels },
    spec: {
      replicas: 1,
      serviceName: SERVICE,
      selector: { matchLabels: { [NAME]: SERVICE, [INSTANCE]: name } },
      template: {
        metadata: { labels },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 15,
          securityContext: podSecurity,
          affinity: spreadReplicas,
          initContainers: [keyringInit(keyFile)],
          containers: [
            {
              name: 'replica',
              image: IMAGE,
              imagePullPolicy: 'IfNotPresent',
              args: ['replica', '--id', String(id), '--keys', '/keys', '--data', '/data', '--listen', '0.0.0.0'],
              ports: [{ name: 'ws', containerPort: PORT, protocol: 'TCP' }],
              // /status answers 503 until the replica has opened its data and started its core.
              startupProbe: statusProbe({ periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 150 }),
              readinessProbe: statusProbe({ periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3 }),
              livenessProbe: statusProbe({ periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 }),
              resources: { requests: { cpu: '250m', memory: '256Mi' } },
              securityContext: containerSecurity,
              volumeMounts: [
                { name: 'keys', mountPath: '/keys', readOnly: true },
                { name: 'data', mountPath: '/data' },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: keyringVolumes(replicaSecretName(id), keyFile),
        },
      },
      volumeClaimTemplates: [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } },
        },
      ],
    },
  };
}

export function headlessService(): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: SERVICE, labels: replicaPods },
    spec: {
      clusterIP: 'None',
      // DNS names for pods that are not ready too: replicas must find each other while starting.
      publishNotReadyAddresses: true,
      selector: replicaPods,
      ports: [{ name: 'ws', port: PORT, targetPort: 'ws', protocol: 'TCP' }],
    },
  };
}

export function disruptionBudget(): IPodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: SERVICE, labels: replicaPods },
    // Voluntary evictions (node drains) keep 2f + 1 replicas running: the cluster keeps serving.
    spec: { minAvailable: REPLICAS - F, selector: { matchLabels: replicaPods } },
  };
}

/** A pod with the pbft CLI, cluster.json and client 0's key at /app/keys (the CLI's default `--keys keys`). */
export function clientPod(): IPod {
  const keyFile = 'client-0.key';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${SERVICE}-client`, labels: { [NAME]: SERVICE, [COMPONENT]: 'client' } },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      securityContext: podSecurity,
      initContainers: [keyringInit(keyFile)],
      containers: [
        {
          name: 'client',
          image: IMAGE,
          imagePullPolicy: 'IfNotPresent',
          command: ['sleep', 'infinity'],
          resources: { requests: { cpu: '10m', memory: '64Mi' } },
          securityContext: containerSecurity,
          volumeMounts: [
            { name: 'keys', mountPath: '/app/keys', readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: keyringVolumes(clientSecretName(0), keyFile),
    },
  };
}

// ------------------------------------------------------------------------------------------------
// YAML: block maps and sequences, lists of scalars as JSON flow sequences, strings plain only when
// no YAML parser (1.1 or 1.2) can read them as anything else.

type Value = string | number | boolean | null | undefined | readonly Value[] | { readonly [key: string]: Value };

const PLAIN = /^[A-Za-z/][A-Za-z0-9_./-]*(?::[A-Za-z0-9_./-]+)*$/;
const RESERVED = /^(?:true|false|null|yes|no|on|off|y|n)$/i;

function scalarText(value: Value): string {
  if (typeof value === 'string') return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
    return String(value);
  }
  if (typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  throw new Error(`not a scalar: ${JSON.stringify(value)}`);
}

const isScalar = (v: Value): v is string | number | boolean | null => v === null || typeof v !== 'object';

function inline(value: Value): string | null {
  if (isScalar(value)) return scalarText(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every(isScalar)) return `[${value.map((v) => (typeof v === 'string' ? JSON.stringify(v) : scalarText(v))).join(', ')}]`;
    return null;
  }
  return Object.keys(value as object).length === 0 ? '{}' : null;
}

function emit(value: Value, indent: number): string[] {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    return value.flatMap((item: Value) => {
      if (Array.isArray(item)) throw new Error('sequences of sequences are not emitted');
      const text = inline(item);
      if (text !== null) return [`${pad}- ${text}`];
      const lines = emit(item, indent + 2);
      lines[0] = `${pad}- ${lines[0]!.trimStart()}`;
      return lines;
    });
  }
  const lines: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, Value>)) {
    if (v === undefined) continue;
    const text = inline(v);
    // File modes are written in decimal (0400 is 256 to YAML 1.1 and 400 to YAML 1.2): say the octal.
    const note = (key === 'defaultMode' || key === 'mode') && typeof v === 'number' ? `  # 0${v.toString(8)}` : '';
    if (text !== null) lines.push(`${pad}${scalarText(key)}: ${text}${note}`);
    else lines.push(`${pad}${scalarText(key)}:`, ...emit(v, indent + 2));
  }
  return lines;
}

export function toYaml(object: object, comment: string): string {
  const header = comment.split('\n').map((line) => (line === '' ? '#' : `# ${line}`));
  return [...header, ...emit(object as Value, 0)].join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// The files

export const K8S_DIR = 'deploy/k8s';
const GENERATED = 'Generated by scripts/k8s-manifests.ts (npm run k8s:manifests): edit the script, not this file.';

export interface Manifest {
  /** Path relative to the repository root. */
  path: string;
  object: IStatefulSet | IService | IPodDisruptionBudget | IPod;
  text: string;
}

export function manifests(): Manifest[] {
  const files: Array<Omit<Manifest, 'text'> & { about: string }> = [
    {
      path: `${K8S_DIR}/service.yaml`,
      object: headlessService(),
      about: `Headless Service: gives each replica pod a stable DNS name, <pod>.${SERVICE} (${podDnsName(0)}, ...).`,
    },
    {
      path: `${K8S_DIR}/pdb.yaml`,
      object: disruptionBudget(),
      about: `At most f = ${F} replica down through voluntary disruptions (drains).`,
    },
    ...Array.from({ length: REPLICAS }, (_, id) => ({
      path: `${K8S_DIR}/${statefulSetName(id)}.yaml`,
      object: replicaStatefulSet(id),
      about: `Replica ${id}: pod ${statefulSetName(id)}-0, URL ${replicaUrl(id)}; mounts the Secret ${replicaSecretName(id)} only.`,
    })),
    {
      path: `${K8S_DIR}/tools/client.yaml`,
      object: clientPod(),
      about: [
        `A pod with the pbft CLI, cluster.json and client 0's key (Secret ${clientSecretName(0)}), for kubectl exec:`,
        `  kubectl apply -f ${K8S_DIR}/tools/client.yaml     (kubectl apply -f ${K8S_DIR}/ leaves subdirectories out)`,
        `  kubectl exec ${SERVICE}-client -- node bin/pbft.mjs client put a 1`,
      ].join('\n'),
    },
  ];
  return files.map(({ path, object, about }) => ({ path, object, text: toYaml(object, `${about}\n${GENERATED}`) }));
}

/** Every .yaml file under deploy/k8s (relative paths), the generated ones and any stale ones. */
export function committedManifestPaths(root: string): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(`${dir}/${e.name}`) : /\.ya?ml$/.test(e.name) ? [`${dir}/${e.name}`] : [],
    );
  return walk(K8S_DIR).sort();
}

function main(argv: readonly string[]): number {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const check = argv.includes('--check');
  const wanted = manifests();
  const stale = (() => {
    try {
      return committedManifestPaths(root).filter((p) => !wanted.some((m) => m.path === p));
    } catch {
      return [];
    }
  })();
  const differing = wanted.filter((m) => {
    try {
      return readFileSync(join(root, m.path), 'utf8') !== m.text;
    } catch {
      return true;
    }
  });
  if (check) {
    for (const m of differing) console.error(`k8s-manifests: ${m.path} is not what scripts/k8s-manifests.ts generates`);
    for (const p of stale) console.error(`k8s-manifests: ${p} is not generated by scripts/k8s-manifests.ts`);
    return differing.length + stale.length === 0 ? 0 : 1;
  }
  for (const m of differing) {
    mkdirSync(dirname(join(root, m.path)), { recursive: true });
    writeFileSync(join(root, m.path), m.text);
    console.log(`wrote ${m.path}`);
  }
  for (const p of stale) {
    rmSync(join(root, p));
    console.log(`removed ${p}`);
  }
  if (differing.length + stale.length === 0) console.log(`${relative(process.cwd(), join(root, K8S_DIR)) || '.'}: up to date`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
