-- The dashboard's charts count the attempts of a recent window (`Store::attempt_stats`); this
-- index bounds that scan to the window however long the log grows.
CREATE INDEX attempts_by_time ON attempts (started_at);
