// A page's data with its loading and error state.
import { ref, type Ref } from "vue";
import { ApiError } from "../api/client";

export function useLoad<T>(load: () => Promise<T>, initial: T) {
  const data = ref(initial) as Ref<T>;
  const loading = ref(true);
  const error = ref<string | null>(null);
  // Only the latest load's answer counts: an older one finishing last (a filter
  // changed while an action's reload was in flight) must not overwrite it.
  let latest = 0;
  async function reload() {
    const mine = ++latest;
    loading.value = true;
    error.value = null;
    try {
      const value = await load();
      if (mine === latest) data.value = value;
    } catch (e) {
      if (mine === latest) error.value = e instanceof Error ? e.message : String(e);
    } finally {
      if (mine === latest) loading.value = false;
    }
  }
  return { data, loading, error, reload };
}

/**
 * Runs an action and reports its failure as text (for forms and buttons), and
 * the API's list of problems (a 422) into `problems` when given.
 */
export async function attempt(action: () => Promise<unknown>, failure: Ref<string | null>, problems?: Ref<string[]>) {
  failure.value = null;
  if (problems) problems.value = [];
  try {
    await action();
    return true;
  } catch (e) {
    failure.value = e instanceof Error ? e.message : String(e);
    if (problems && e instanceof ApiError) problems.value = e.problems;
    return false;
  }
}
