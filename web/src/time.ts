// Short relative times for lists ("now", "5m", "3h", "Dec 2"), with the full
// date for titles and screen readers. One shared minute clock keeps every
// shown time current without a timer per item.
import { useEffect, useState } from "preact/hooks";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const sameYear = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const otherYear = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", year: "numeric" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

/** "now" under a minute (and for a clock slightly ahead), then minutes, hours, and the date after a day. */
export function shortTime(when: Date, now: number = Date.now()): string {
  const age = now - when.getTime();
  if (age < MINUTE) return "now";
  if (age < HOUR) return `${Math.floor(age / MINUTE)}m`;
  if (age < DAY) return `${Math.floor(age / HOUR)}h`;
  const format = when.getFullYear() === new Date(now).getFullYear() ? sameYear : otherYear;
  return format.format(when);
}

/** The whole date and time, in the reader's locale and time zone. */
export function fullTime(when: Date): string {
  return full.format(when);
}

const ticking = new Set<(now: number) => void>();
let timer: ReturnType<typeof setInterval> | undefined;

/** The time now, updated once a minute while any component shows a relative time. */
export function useMinuteClock(): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    ticking.add(setNow);
    timer ??= setInterval(() => ticking.forEach((tick) => tick(Date.now())), MINUTE);
    return () => {
      ticking.delete(setNow);
      if (ticking.size === 0) {
        clearInterval(timer);
        timer = undefined;
      }
    };
  }, []);
  return now;
}
