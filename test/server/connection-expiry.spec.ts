import { createHook } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { DeadlineSchedule } from '../../lib/server/connection-expiry.js';

describe('DeadlineSchedule', () => {
  it('reports each item once its deadline has passed, earliest first, under one timer', async () => {
    const due: string[][] = [];
    const schedule = new DeadlineSchedule<string>((items) => due.push([...items]));
    const start = Date.now();
    schedule.add('b1', start + 60);
    schedule.add('a', start + 20);
    schedule.add('b2', start + 60);
    schedule.add('gone', start + 40);
    schedule.delete('gone', start + 40);
    schedule.add('late', start + 3_600_000);
    expect(schedule.size).toBe(4);
    await sleep(150);
    expect(due).toEqual([['a'], ['b1', 'b2']]);
    expect(schedule.size).toBe(1);
    schedule.stop();
  });

  it('reports nothing early, and nothing after stop()', async () => {
    const due: number[] = [];
    const schedule = new DeadlineSchedule<number>((items) => due.push(...items));
    schedule.add(1, Date.now() + 30);
    schedule.stop();
    await sleep(60);
    expect(due).toEqual([]);
  });

  it('holds no timer once its last item is unscheduled, and arms again for the next', async () => {
    const timers = new Set<number>();
    const hook = createHook({
      init: (id, type) => {
        if (type === 'Timeout') timers.add(id);
      },
      destroy: (id) => timers.delete(id),
    }).enable();
    try {
      const due: string[] = [];
      const schedule = new DeadlineSchedule<string>((items) => due.push(...items));
      const start = Date.now();
      schedule.add('a', start + 3_600_000);
      schedule.add('b', start + 7_200_000);
      expect(timers.size).toBe(1);
      schedule.delete('a', start + 3_600_000);
      schedule.delete('b', start + 7_200_000);
      // Destroy hooks run on a later turn.
      await new Promise((resolve) => setImmediate(resolve));
      expect(timers.size).toBe(0);
      schedule.add('c', Date.now() + 20);
      await sleep(80);
      expect(due).toEqual(['c']);
    } finally {
      hook.disable();
    }
  });
});
