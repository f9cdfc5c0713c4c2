import { describe, expect, it } from 'vitest';
import { formatClock, formatDuration, formatDurationOrDash } from './format';

describe('formatDuration', () => {
  it.each([
    [0, '0:00'],
    [5, '0:05'],
    [59, '0:59'],
    [60, '1:00'],
    [61, '1:01'],
    [754, '12:34'],
    [3599, '59:59'],
    [3600, '1:00:00'],
    [3723, '1:02:03'],
    [36000 + 59, '10:00:59'],
    [12.9, '0:12'],
    [-3, '0:00'],
    [Number.NaN, '0:00'],
  ])('%s s → %s', (s, expected) => {
    expect(formatDuration(s)).toBe(expected);
  });

  it('dash for unknown', () => {
    expect(formatDurationOrDash(null)).toBe('—');
    expect(formatDurationOrDash(65)).toBe('1:05');
  });
});

describe('formatClock', () => {
  it('local hh:mm:ss with zero padding', () => {
    const d = new Date(2025, 0, 2, 3, 4, 5); // local time
    expect(formatClock(d.getTime())).toBe('03:04:05');
    expect(formatClock(new Date(2025, 5, 30, 23, 59, 9).getTime())).toBe('23:59:09');
  });

  it('invalid → dash', () => {
    expect(formatClock(Number.NaN)).toBe('—');
  });
});
