// Cursor pagination with a way back: the cursors of the pages already seen.
import { reactive, ref, type Ref } from "vue";
export class Pager<C> {
  private stack: (C | null)[] = [];
  current: C | null = null;

  get canGoBack(): boolean {
    return this.stack.length > 0;
  }

  forward(cursor: C) {
    this.stack.push(this.current);
    this.current = cursor;
  }

  back() {
    if (this.stack.length > 0) this.current = this.stack.pop() ?? null;
  }

  reset() {
    this.stack = [];
    this.current = null;
  }
}

/** A paginated list's cursor state and its three moves, each followed by `reload`. */
export function usePages<C>(reload: () => Promise<void>) {
  const pager = reactive(new Pager<C>()) as Pager<C>;
  const next = ref<C | null>(null) as Ref<C | null>;
  return {
    pager,
    next,
    refilter() {
      pager.reset();
      void reload();
    },
    older() {
      if (next.value !== null) {
        pager.forward(next.value);
        void reload();
      }
    },
    newer() {
      pager.back();
      void reload();
    },
  };
}
