// Helpers for component tests in jsdom (Testing Library).
import { screen } from '@testing-library/svelte';
import { tick } from 'svelte';

/** Lets mount and the async subscribe/snapshot chains settle. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await Promise.resolve();
    await tick();
  }
}

/** The calls list's row of call `id`. */
export function rowOf(id: string): HTMLElement {
  const row = screen.getAllByTestId('call-row').find((r) => r.dataset.callId === id);
  if (!row) throw new Error(`no row for ${id}`);
  return row;
}
