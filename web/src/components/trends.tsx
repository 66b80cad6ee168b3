import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Schemas } from "../api/client";
import { optionallyAuthorized } from "../session";

type Trend = Schemas["aviary.trends.v1.Trend"];

/** The top hashtags of the recent window, each a link to its search. */
export function TrendsPanel() {
  const [trends, setTrends] = useState<Trend[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const result = await api
          .GET("/v1/trends", { params: { query: { pageSize: 10 } }, headers: await optionallyAuthorized() })
          .catch((cause) => Promise.reject(networkError(cause)));
        if (live) setTrends(unwrap(result).trends ?? []);
      } catch (cause) {
        if (live) setError(networkError(cause));
      }
    })();
    return () => void (live = false);
  }, []);

  return (
    <section class="trends" aria-labelledby="trends-title">
      <h2 id="trends-title">Trending</h2>
      {error && <p class="error">{error.message}</p>}
      {!trends && !error && <p class="loading">Loading trends…</p>}
      {trends && trends.length === 0 && <p class="empty">Nothing is trending right now.</p>}
      {trends && trends.length > 0 && (
        <ol class="trend-list">
          {trends.map((trend) => (
            <li key={trend.hashtag}>
              <a href={`/search?q=${encodeURIComponent(`#${trend.hashtag}`)}`}>#{trend.hashtag}</a>
              {trend.userCount && (
                <span class="hint">
                  {" "}
                  {trend.userCount} {trend.userCount === "1" ? "person" : "people"}
                </span>
              )}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
