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
});
