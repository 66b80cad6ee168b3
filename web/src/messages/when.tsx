import { fullTime, shortTime, useMinuteClock } from "../time";

/** A short relative time ("5m"), the full date for the title and screen readers, as posts and notifications show it. */
export function When({ at }: { at: string }) {
  const now = useMinuteClock();
  const when = new Date(at);
  return (
    <time dateTime={at} title={fullTime(when)}>
      <span aria-hidden="true">{shortTime(when, now)}</span>
      <span class="sr-only">{fullTime(when)}</span>
    </time>
  );
}
