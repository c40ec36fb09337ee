/**
 * Values memoised per object and a small second key (a classification and its bounceCat, a
 * classification and its event kind). The key asked for last is checked first, without a map lookup:
 * consecutive records nearly always bring the same one. Other keys wait in a map made once a second
 * key shows up. Entries live as long as their object (a WeakMap).
 */
export class KeyedMemo<O extends object, K, V> {
  private readonly memos = new WeakMap<O, Memo<K, V>>();

  /** `maxKeys` bounds the keys kept per object: it only guards against input of nonsense. */
  constructor(private readonly maxKeys: number) {}

  get(o: O, key: K): V | undefined {
    const memo = this.memos.get(o);
    if (memo === undefined) return undefined;
    if (memo.last.key === key) return memo.last.value;
    const known = memo.all?.get(key);
    if (known === undefined) return undefined;
    memo.last = known;
    return known.value;
  }

  /** `key` is kept: it must hold nothing else alive (not a slice of a record's text; see ownString). */
  set(o: O, key: K, value: V): void {
    const entry = { key, value };
    const memo = this.memos.get(o);
    if (memo === undefined) {
      this.memos.set(o, { last: entry });
      return;
    }
    memo.all ??= new Map([[memo.last.key, memo.last]]);
    if (memo.all.size >= this.maxKeys) memo.all.clear();
    memo.all.set(key, entry);
    memo.last = entry;
  }
}

interface Entry<K, V> {
  readonly key: K;
  readonly value: V;
}

interface Memo<K, V> {
  last: Entry<K, V>;
  all?: Map<K, Entry<K, V>>;
}
