import { useEffect, useState } from "preact/hooks";
import { displayName, person } from "./api";

/** The other people's names joined for a heading or a row, or null while they load. */
export function useNames(userIds: string[]): string | null {
  const [names, setNames] = useState<string | null>(null);
  const key = userIds.join(",");
  useEffect(() => {
    let current = true;
    Promise.all(userIds.map((id) => person(id).catch(() => undefined)))
      .then((users) => {
        // A lookup that failed for another reason than a gone account still shows something.
        const shown = users.map((user, i) => (user === undefined ? `User ${userIds[i]}` : displayName(user)));
        if (current) setNames(shown.join(", "));
      })
      .catch(() => undefined);
    return () => void (current = false);
  }, [key]);
  return names;
}
