// Pure formatting helpers (no locale-dependent output, so tests are stable).

/** 0:05, 12:34, 1:02:03. Negative / non-finite / null → "0:00" (null → "—" via `formatDurationOrDash`). */
export function formatDuration(totalSeconds: number): string {
  const s = Number.isFinite(totalSeconds) && totalSeconds > 0 ? Math.floor(totalSeconds) : 0;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(sec)}` : `${m}:${pad2(sec)}`;
}

export function formatDurationOrDash(totalSeconds: number | null): string {
  return totalSeconds === null ? '—' : formatDuration(totalSeconds);
}

/** Local wall-clock time hh:mm:ss (24 h) of a unix-ms timestamp. */
export function formatClock(unixMs: number): string {
  const d = new Date(unixMs);
  if (Number.isNaN(d.getTime())) return '—';
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
