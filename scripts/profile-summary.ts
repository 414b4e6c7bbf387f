import { readFileSync } from 'node:fs';

/**
 * `tsx scripts/profile-summary.ts <file.cpuprofile> [top] [callers-of-regexp]` — where a `node --cpu-prof`
 * profile spent its time: self time by function and by package, biggest first; with a pattern, the
 * callers of the matching functions. `npm run bench -- --profile`
 * writes the worker's and the API's profiles into the bench's scratch directory.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  byFunction: Array<{ name: string; ms: number }>;
  byPackage: Array<{ name: string; ms: number }>;
}

function packageOf(url: string): string {
  if (!url) return '(native / V8)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url.split('/')[0]!;
  const own =
    /\/work\/[^/]+\/([^/]+)\//.exec(url) ??
    /file:\/\/.*?\/((?:activities|ccfs|api|lib|worker|workflows|domain|simulator|bench))\//.exec(url);
  return own ? `project:${own[1]}` : url.replace(/^file:\/\//, '');
}

/** Self time of the functions matching `pattern`, by the chain of their callers (innermost first). */
export function callers(
  profile: Profile,
  pattern: RegExp,
  depth = 8,
  top = 10,
): Array<{ stack: string; ms: number }> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const acc = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!;
    const label = (n: ProfileNode) =>
      `${n.callFrame.functionName || '(anonymous)'}@${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
    if (!pattern.test(label(node))) return;
    const frames: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined && frames.length < depth; cur = parent.get(cur))
      frames.push(label(byId.get(cur)!));
    const key = frames.join(' < ');
    acc.set(key, (acc.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return [...acc.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([stack, us]) => ({ stack, ms: us / 1000 }));
}

export function summarize(profile: Profile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') idle += us;
    const name =
      `${functionName || '(anonymous)'} ${url ? `${url.replace(/^file:\/\/.*?node_modules\//, '').replace(/^file:\/\//, '')}:${lineNumber + 1}` : ''}`.trim();
    fn.set(name, (fn.get(name) ?? 0) + us);
    const p = functionName.startsWith('(') ? functionName : packageOf(url);
    pkg.set(p, (pkg.get(p) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000 }));
  return {
    totalMs: (profile.endTime - profile.startTime) / 1000,
    idleMs: idle / 1000,
    byFunction: sorted(fn),
    byPackage: sorted(pkg),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, topArg, pattern] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx scripts/profile-summary.ts <file.cpuprofile> [top] [callers-of-regexp]');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  if (pattern) {
    for (const c of callers(profile, new RegExp(pattern)))
      console.log(`${c.ms.toFixed(0).padStart(8)} ms  ${c.stack}`);
    process.exit(0);
  }
  const s = summarize(profile, Number(topArg ?? 25));
  console.log(`profile ${file}: ${s.totalMs.toFixed(0)} ms recorded, ${s.idleMs.toFixed(0)} ms idle`);
  console.log('\nself time by package:');
  for (const p of s.byPackage) console.log(`  ${p.ms.toFixed(0).padStart(8)} ms  ${p.name}`);
  console.log('\nself time by function:');
  for (const f of s.byFunction) console.log(`  ${f.ms.toFixed(0).padStart(8)} ms  ${f.name}`);
}
