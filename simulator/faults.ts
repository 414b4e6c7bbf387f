import type { Faults } from './options';
import { type Rng, rngFor } from './prng';
import type { FaultName, FaultRecord } from './state';

export type ProbabilityFault = {
  [K in FaultName]: K extends
    'lateCallbackMs' | 'reorderWindow' | 'reorderMaxHoldMs' | 'slowDownloadBytesPerSecond'
    ? never
    : K;
}[FaultName];

/**
 * Decides faults. Each fault has its own generator seeded from the simulator seed, so enabling one
 * fault does not shift the decisions of another and a run is reproducible.
 */
export class FaultInjector {
  private readonly rngs = new Map<string, Rng>();

  constructor(
    private readonly seed: number | string,
    private readonly faults: () => Faults,
    private readonly record: (r: FaultRecord) => void,
    private readonly now: () => Date,
  ) {}

  /** A generator for a fault's secondary draws (a truncation point, a shuffle). */
  rng(name: string): Rng {
    let rng = this.rngs.get(name);
    if (!rng) {
      rng = rngFor(this.seed, 'fault', name);
      this.rngs.set(name, rng);
    }
    return rng;
  }

  /** Whether a fault fires now: the record (already in the state) when it does. */
  fires(name: ProbabilityFault, target: Omit<FaultRecord, 'at' | 'fault'> = {}): FaultRecord | undefined {
    const p = this.faults()[name];
    if (p <= 0) return undefined;
    const fired = p >= 1 || this.rng(name)() < p;
    return fired ? this.note(name, target) : undefined;
  }

  note(name: FaultName, target: Omit<FaultRecord, 'at' | 'fault'> = {}): FaultRecord {
    const record: FaultRecord = { at: this.now().toISOString(), fault: name, ...target };
    this.record(record);
    return record;
  }

  reset(): void {
    this.rngs.clear();
  }
}
