/**
 * `pbft evidence`: equivocation evidence (src/core/evidence.ts).
 *
 *   pbft evidence list   [--keys keys] [--replica ID|URL ...] [--json]
 *       asks each replica (GET /evidence) and prints one line per piece it holds
 *   pbft evidence export [--keys keys] [--replica ID|URL ...] --out FILE
 *       gathers the evidence of the replicas asked, keeps the pieces that verify with the keyring
 *       (one per signer and slot), and writes them, with the epoch proofs they need, to FILE
 *   pbft evidence verify FILE [--cluster keys/cluster.json]
 *       checks every piece offline with cluster.json alone: one line each, VALID or INVALID
 *
 * Exit status: list and export 0 when at least one replica answered (export: also when there was
 * nothing to write), 1 when none did; verify 0 when every piece is valid, 1 when one is not (its
 * verdict says why), 2 for input it cannot judge (no such file, not JSON, not an evidence file, another
 * cluster). Every error is one line on stderr, never a stack trace.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { ClusterConfig } from '../core/cluster.ts';
import {
  EvidenceVerifier,
  describeEvidence,
  evidenceFileJson,
  evidenceKey,
  parseEvidenceFile,
  verifyEvidenceFile,
  type EvidenceFile,
  type ReportedEvidence,
} from '../core/evidence.ts';
import type { EpochProof } from '../core/messages.ts';
import { CLUSTER_FILE, KeyringError, loadCluster, writeFileAtomic } from '../crypto/keyring.ts';
import { NodeVerifier, sha256 } from '../crypto/node.ts';
import { CliError, errorMessage, httpBaseOf, type CliIo } from './common.ts';

export const EVIDENCE_TIMEOUT_MS = 5_000;
/** An evidence file larger than this is refused unread. */
export const EVIDENCE_FILE_BYTES_MAX = 64 * 1024 * 1024;
/** verify: exit status for input it cannot judge (1 is "evidence that does not verify"). */
export const EVIDENCE_EXIT_BAD_INPUT = 2;

export interface EvidenceFetchFlags {
  keys: string;
  replica?: string[];
  json?: boolean;
  out?: string;
}

export interface EvidenceVerifyFlags {
  cluster: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  const parts = value.split(',').map((v) => v.trim()).filter((v) => v !== '');
  for (const p of parts) {
    if (!/^[0-9]+$/.test(p) && !/^(wss?|https?):\/\//.test(p)) throw new InvalidArgumentError(`"${p}" is neither a replica id nor a ws:// or http:// URL.`);
  }
  return [...(previous ?? []), ...parts];
}

export function addEvidenceCommand(program: Command, io: CliIo, done: (code: number) => void): Command {
  const evidence = program
    .command('evidence')
    .description('equivocation evidence: list what the replicas hold, export it to a file, verify a file offline with cluster.json');
  const fetchOptions = (cmd: Command): Command =>
    cmd
      .option('--keys <dir>', 'keyring directory (cluster.json)', 'keys')
      .option('--replica <id|url>', 'ask only this replica (an id of the keyring, or its URL); repeat or separate with commas', collect);
  fetchOptions(evidence.command('list').description('print the evidence each replica holds (GET /evidence)'))
    .option('--json', 'print the evidence files the replicas served, as a JSON array')
    .action(async (flags: EvidenceFetchFlags) => done(await runEvidenceList(flags, io)));
  fetchOptions(evidence.command('export').description('write the evidence the replicas hold (the pieces that verify) to a file that `pbft evidence verify` checks'))
    .requiredOption('--out <file>', 'the evidence file to write (JSON)')
    .action(async (flags: EvidenceFetchFlags) => done(await runEvidenceExport(flags, io)));
  evidence
    .command('verify <file>')
    .description(
      'check an evidence file offline: both signatures of each piece verify with the keys of cluster.json (or of a later configuration the file proves) ' +
        `and the two messages conflict; exit 0 when every piece is valid, 1 when one is not, ${EVIDENCE_EXIT_BAD_INPUT} for unusable input`,
    )
    .option('--cluster <file>', 'the keyring (cluster.json)', join('keys', CLUSTER_FILE))
    .action(async (file: string, flags: EvidenceVerifyFlags) => done(await runEvidenceVerify(file, flags, io)));
  return evidence;
}

function nodeCrypto(): { verify(key: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean; hash(data: Uint8Array): Uint8Array } {
  const verifier = new NodeVerifier();
  return { verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 };
}

function keyring(path: string, exitCode = 1): ClusterConfig {
  try {
    return loadCluster(path);
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(err.message, exitCode);
    throw err;
  }
}

interface Source {
  label: string;
  url: string;
}

/** The replicas to ask: --replica (ids of the keyring or URLs), else every replica of the keyring. */
function sources(cluster: ClusterConfig, wanted: string[] | undefined): Source[] {
  if (wanted === undefined || wanted.length === 0) return cluster.replicas.map((r) => ({ label: `replica ${r.id}`, url: r.url }));
  return wanted.map((w) => {
    if (/^[0-9]+$/.test(w)) {
      const r = cluster.replicas.find((x) => x.id === Number(w));
      if (r === undefined) throw new CliError(`replica ${w} is not in the keyring of cluster ${cluster.clusterId} (give its URL)`);
      return { label: `replica ${r.id}`, url: r.url };
    }
    return { label: w, url: w };
  });
}

type Fetched = { source: Source; ok: true; file: EvidenceFile; json: unknown } | { source: Source; ok: false; error: string };

async function fetchEvidence(cluster: ClusterConfig, source: Source): Promise<Fetched> {
  let target: string;
  try {
    target = `${httpBaseOf(source.url)}/evidence`;
  } catch {
    return { source, ok: false, error: `${source.url} is not a URL` };
  }
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(EVIDENCE_TIMEOUT_MS) });
    const text = await res.text();
    if (!res.ok) return { source, ok: false, error: `HTTP ${res.status} from ${target}${res.status === 404 ? ' (a replica of an older version?)' : ''}` };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { source, ok: false, error: `${target} did not answer JSON` };
    }
    const parsed = parseEvidenceFile(json);
    if (!parsed.ok) return { source, ok: false, error: `${target}: ${parsed.reason}` };
    if (parsed.value.clusterId !== cluster.clusterId) return { source, ok: false, error: `${target} answers for cluster ${parsed.value.clusterId}, not ${cluster.clusterId}` };
    return { source, ok: true, file: parsed.value, json };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    const why = (err as { name?: string }).name === 'TimeoutError' ? `no answer within ${EVIDENCE_TIMEOUT_MS} ms` : cause ?? errorMessage(err);
    return { source, ok: false, error: `${source.label}: ${why}` };
  }
}

async function fetchAll(flags: EvidenceFetchFlags, io: CliIo): Promise<{ cluster: ClusterConfig; answers: Array<Extract<Fetched, { ok: true }>> }> {
  const cluster = keyring(join(flags.keys, CLUSTER_FILE));
  const fetched = await Promise.all(sources(cluster, flags.replica).map((s) => fetchEvidence(cluster, s)));
  for (const f of fetched) if (!f.ok) io.err(`pbft evidence: ${f.source.label} not asked: ${f.error}`);
  const answers = fetched.filter((f): f is Extract<Fetched, { ok: true }> => f.ok);
  if (answers.length === 0) throw new CliError(`no replica of cluster ${cluster.clusterId} answered`);
  return { cluster, answers };
}

export async function runEvidenceList(flags: EvidenceFetchFlags, io: CliIo): Promise<number> {
  const { answers } = await fetchAll(flags, io);
  if (flags.json === true) {
    io.out(JSON.stringify(answers.map((a) => ({ source: a.source.label, ...(a.json as object) })), null, 2));
    return 0;
  }
  let pieces = 0;
  const signers = new Set<number>();
  for (const a of answers) {
    const items = a.file.items;
    io.out(`${a.source.label}: ${items.length === 0 ? 'no evidence' : `${items.length} piece${items.length === 1 ? '' : 's'} of evidence`}`);
    for (const i of items) {
      io.out(`  ${i.evidence.kind}: ${describeEvidence(i.evidence)}${i.evidence.epoch > 0 ? ` (epoch ${i.evidence.epoch})` : ''}`);
      signers.add(i.evidence.signer);
    }
    pieces += items.length;
  }
  io.out(`${pieces} piece${pieces === 1 ? '' : 's'} of evidence from ${answers.length} replica${answers.length === 1 ? '' : 's'}${signers.size > 0 ? `, naming replica${signers.size === 1 ? '' : 's'} ${[...signers].sort((a, b) => a - b).join(', ')}` : ''}`);
  return 0;
}

export async function runEvidenceExport(flags: EvidenceFetchFlags, io: CliIo): Promise<number> {
  const { cluster, answers } = await fetchAll(flags, io);
  // Every replica's epoch proofs, by epoch (each is checked link by link from the keyring below).
  const proofs = new Map<number, EpochProof>();
  for (const a of answers) for (const p of a.file.proofs) if (!proofs.has(p.epoch)) proofs.set(p.epoch, p);
  const verifier = new EvidenceVerifier(cluster, [...proofs.values()].sort((x, y) => x.epoch - y.epoch), nodeCrypto());
  const kept = new Map<string, ReportedEvidence>();
  let invalid = 0;
  for (const a of answers) {
    for (const item of a.file.items) {
      const key = evidenceKey(item.evidence);
      if (kept.has(key)) continue;
      const v = verifier.verify(item.evidence);
      if (!v.ok) {
        invalid++;
        io.err(`pbft evidence: ${a.source.label} served evidence that does not verify, left out: ${v.reason}`);
        continue;
      }
      kept.set(key, { evidence: item.evidence, reportedBy: item.reportedBy ?? a.source.label });
    }
  }
  if (kept.size === 0) {
    io.out(`no evidence to export: ${answers.length} replica${answers.length === 1 ? '' : 's'} answered${invalid > 0 ? `, ${invalid} piece${invalid === 1 ? '' : 's'} did not verify` : ', none holds any'}; ${flags.out} not written`);
    return 0;
  }
  const items = [...kept.values()];
  const file = evidenceFileJson(cluster.clusterId, items, proofs);
  try {
    writeFileAtomic(flags.out!, JSON.stringify(file, null, 2) + '\n', 0o644);
  } catch (err) {
    throw new CliError(`cannot write ${flags.out}: ${errorMessage(err)}`);
  }
  const signers = [...new Set(items.map((i) => i.evidence.signer))].sort((a, b) => a - b);
  io.out(`wrote ${items.length} piece${items.length === 1 ? '' : 's'} of evidence against replica${signers.length === 1 ? '' : 's'} ${signers.join(', ')} to ${flags.out} (verify: pbft evidence verify ${flags.out} --cluster ${join(flags.keys, CLUSTER_FILE)})`);
  return 0;
}

export async function runEvidenceVerify(path: string, flags: EvidenceVerifyFlags, io: CliIo): Promise<number> {
  const bad = (message: string): CliError => new CliError(message, EVIDENCE_EXIT_BAD_INPUT);
  const cluster = keyring(flags.cluster, EVIDENCE_EXIT_BAD_INPUT);
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > EVIDENCE_FILE_BYTES_MAX) throw bad(`${path} is ${size} bytes, more than an evidence file may be (${EVIDENCE_FILE_BYTES_MAX})`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as { code?: string }).code;
    throw bad(code === 'ENOENT' ? `${path} not found` : code === 'EISDIR' ? `${path} is a directory` : `cannot read ${path}: ${errorMessage(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw bad(`${path} is not JSON (${errorMessage(err)})`);
  }
  const result = verifyEvidenceFile(json, cluster, nodeCrypto());
  if (!result.ok) throw bad(`${path}: ${result.reason}`);
  const { verdicts } = result;
  verdicts.forEach((v, i) => {
    const where = verdicts.length > 1 ? `evidence[${i}]: ` : '';
    io.out(v.ok ? `VALID: ${where}${v.verdict}` : `INVALID: ${where}${v.reason}`);
  });
  const valid = verdicts.filter((v) => v.ok).length;
  if (verdicts.length > 1) io.out(`${valid} of ${verdicts.length} pieces of evidence are valid`);
  return valid === verdicts.length ? 0 : 1;
}
