// The group commit of the floor benches (floor.bench.ts, layout.bench.ts): what a store does
// without any of Skein's own work, to measure Skein against.
import type { ReturnTally } from '@skein/engine';

/** One write waiting for its group's commit. */
export interface GroupMember {
  /** Called once its group is durable. */
  done(): void;
}

/**
 * A store's group commit: what arrives while a group is being written and synced is the
 * next group. With a tally, after a group of two or more is answered the next one gathers
 * as a node's shards do: until every writer any store sharing the tally answered is back,
 * at most 2 ms (@skein/engine's ReturnTally). `write` writes a group durably and then
 * calls `written` (it never answers an unsynced write). Returns the store's entry point.
 */
export function groupCommit<T extends GroupMember>(write: (group: T[], written: () => void) => void, tally: ReturnTally | null): (member: T) => void {
  let queue: T[] = [];
  let writing = false;
  /** While the next group gathers: ends it. */
  let gathering: (() => void) | null = null;
  let target = 0;
  const gather = (answered: number, t: ReturnTally) => {
    t.answered(answered);
    target = queue.length + answered;
    const mark = t.mark();
    let cancel = () => {};
    const end = () => {
      if (gathering !== end) return;
      clearTimeout(timer);
      cancel();
      gathering = null;
      flush();
    };
    const timer = setTimeout(() => {
      t.forgive(mark);
      end();
    }, 2);
    gathering = end;
    cancel = t.whenAllBack(end);
  };
  const flush = (): void => {
    if (writing || gathering || queue.length === 0) return;
    writing = true;
    const group = queue;
    queue = [];
    write(group, () => {
      writing = false;
      for (const m of group) m.done();
      if (tally && group.length >= 2) gather(group.length, tally);
      else flush();
    });
  };
  return (member) => {
    queue.push(member);
    tally?.arrived();
    if (gathering && queue.length >= target) gathering();
    else flush();
  };
}

/** Which of the benches' stores a stream goes to: a plain string hash (Skein's own placement is libs/ring's). */
export function streamHash(stream: string): number {
  let h = 0;
  for (let i = 0; i < stream.length; i++) h = (h * 31 + stream.charCodeAt(i)) | 0;
  return h >>> 0;
}
