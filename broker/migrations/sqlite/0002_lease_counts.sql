-- Lease counts by state, kept by triggers, so the metrics gauge reads a few
-- rows instead of counting millions of leases on every scrape. SQLite has
-- one writer at a time, so plain counters cost no contention.
CREATE TABLE lease_counts (
    state TEXT PRIMARY KEY NOT NULL,
    n     INTEGER NOT NULL
);

INSERT INTO lease_counts (state, n) SELECT state, COUNT(*) FROM leases GROUP BY state;

CREATE TRIGGER leases_count_insert AFTER INSERT ON leases BEGIN
    INSERT INTO lease_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER leases_count_delete AFTER DELETE ON leases BEGIN
    UPDATE lease_counts SET n = n - 1 WHERE state = OLD.state;
END;

CREATE TRIGGER leases_count_update AFTER UPDATE OF state ON leases
WHEN OLD.state <> NEW.state BEGIN
    UPDATE lease_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO lease_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
