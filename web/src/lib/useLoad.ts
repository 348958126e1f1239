// A page's data with its loading and error state.
import { ref, type Ref } from "vue";

export function useLoad<T>(load: () => Promise<T>, initial: T) {
  const data = ref(initial) as Ref<T>;
  const loading = ref(true);
  const error = ref<string | null>(null);
  async function reload() {
    loading.value = true;
    error.value = null;
    try {
      data.value = await load();
    } catch (e) {
      error.value = e instanceof Error ? e.message : String(e);
    } finally {
      loading.value = false;
    }
  }
  return { data, loading, error, reload };
}

/** Runs an action and reports its failure as text (for forms and buttons). */
export async function attempt(action: () => Promise<unknown>, failure: Ref<string | null>) {
  failure.value = null;
  try {
    await action();
    return true;
  } catch (e) {
    failure.value = e instanceof Error ? e.message : String(e);
    return false;
  }
}
