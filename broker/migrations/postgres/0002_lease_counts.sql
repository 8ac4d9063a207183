-- Lease counts by state, so the metrics gauge does not count millions of
-- leases on every scrape. Statement triggers append signed deltas instead
-- of updating one counter row: a counter row would be locked by every
-- lease write until its commit, serialising all issuers and revokers on
-- one row. Reading compacts the deltas (see `count_leases`).
-- Nodes sharing the database may be writing leases: hold their writes
-- until the triggers exist, so the first count misses none.
LOCK TABLE leases IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE lease_count_deltas (
    state TEXT NOT NULL,
    delta BIGINT NOT NULL
);

INSERT INTO lease_count_deltas (state, delta) SELECT state, COUNT(*) FROM leases GROUP BY state;

CREATE FUNCTION leases_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lease_count_deltas (state, delta)
        SELECT state, COUNT(*) FROM new_rows GROUP BY state;
    RETURN NULL;
END $$;

CREATE FUNCTION leases_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lease_count_deltas (state, delta)
        SELECT state, -COUNT(*) FROM old_rows GROUP BY state;
    RETURN NULL;
END $$;

CREATE FUNCTION leases_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lease_count_deltas (state, delta)
        SELECT state, SUM(d) FROM (
            SELECT state, -1 AS d FROM old_rows
            UNION ALL
            SELECT state, 1 AS d FROM new_rows
        ) AS moved
        GROUP BY state HAVING SUM(d) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER leases_count_insert AFTER INSERT ON leases
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leases_count_inserted();

CREATE TRIGGER leases_count_delete AFTER DELETE ON leases
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leases_count_deleted();

-- Every update fires (a column list cannot go with transition tables); one
-- that moves no lease between states, such as a claim, adds no row.
CREATE TRIGGER leases_count_update AFTER UPDATE ON leases
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leases_count_updated();
