import { formatWallTime, instantToWall, parseWallTime, wallToInstant, WallTimeError } from './wall-time';

/** CC-FS accepts at most three days per query (docs/ccfs-protocol.md §3). */
export const MAX_CHUNK_SECONDS = 3 * 24 * 3600;

export interface ChunkPlanInput {
  /** `yyyy-MM-dd HH:mm:ss` in `timeZone`. */
  begin: string;
  end: string;
  timeZone: string;
  /** Largest chunk, at most MAX_CHUNK_SECONDS. */
  chunkSeconds?: number;
}

export interface PlannedChunk {
  index: number;
  begin: string;
  end: string;
}

/**
 * Splits `[begin, end]` into abutting chunks: each chunk's end is the next one's begin, so no second
 * is left out whether CC-FS treats endTime as inclusive or not. Each chunk is at most `chunkSeconds`
 * long both on the wall clock (what CC-FS's span check sees) and in elapsed time (what differs
 * across a fall-back change), so no chunk is ever rejected as too long.
 */
export function planChunks(input: ChunkPlanInput): PlannedChunk[] {
  const length = input.chunkSeconds ?? MAX_CHUNK_SECONDS;
  if (!Number.isInteger(length) || length < 60 || length > MAX_CHUNK_SECONDS) {
    throw new WallTimeError(`chunk length must be a whole number of seconds from 60 to ${MAX_CHUNK_SECONDS}`);
  }
  const begin = parseWallTime(input.begin, 'from');
  const end = parseWallTime(input.end, 'to');
  if (end <= begin) throw new WallTimeError(`to (${input.end}) must be later than from (${input.begin})`);

  const chunks: PlannedChunk[] = [];
  let cursor = begin;
  while (cursor < end) {
    const byWall = Math.min(end, cursor + length);
    let next = byWall;
    const start = wallToInstant(cursor, input.timeZone);
    if (wallToInstant(next, input.timeZone) - start > length) {
      next = instantToWall(start + length, input.timeZone);
      // Inside a repeated fall-back hour the elapsed bound can land on a wall time that is not later
      // than the cursor, which wall-clock strings cannot express: keep the wall-clock bound then.
      // Its elapsed length exceeds `length` by at most the repeated hour, and can only happen for
      // chunks shorter than that hour's distance to three days, so CC-FS's limit still holds.
      if (next <= cursor) next = byWall;
    }
    chunks.push({ index: chunks.length, begin: formatWallTime(cursor), end: formatWallTime(next) });
    cursor = next;
  }
  return chunks;
}
