// One confirmation dialog for the whole console: `await confirm(...)` is true
// when the user confirmed.
import { reactive } from "vue";

export const dialog = reactive<{
  open: boolean;
  title: string;
  message: string;
  action: string;
  resolve: ((ok: boolean) => void) | null;
}>({ open: false, title: "", message: "", action: "Confirm", resolve: null });

export function confirm(title: string, message: string, action = "Confirm"): Promise<boolean> {
  dialog.resolve?.(false);
  return new Promise((resolve) => {
    Object.assign(dialog, { open: true, title, message, action, resolve });
  });
}

export function answer(ok: boolean) {
  const resolve = dialog.resolve;
  Object.assign(dialog, { open: false, resolve: null });
  resolve?.(ok);
}
