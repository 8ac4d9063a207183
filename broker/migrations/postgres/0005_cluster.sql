-- Several nodes on one database (docs/architecture.md, "Several nodes").

-- Each node's echo: written every second, so the others know who is alive.
-- Times are the database's clock, never a node's.
CREATE TABLE cluster_nodes (
    node_id     TEXT PRIMARY KEY NOT NULL,
    api_address TEXT NOT NULL,
    version     TEXT NOT NULL,
    key_term    BIGINT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    last_echo   TIMESTAMPTZ NOT NULL
);

-- Once-only jobs (the periodic pass, the rewrap): held by one node until
-- `held_until`, renewed while it works; another node takes a job over only
-- once the hold has run out.
CREATE TABLE cluster_jobs (
    job        TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    held_until TIMESTAMPTZ NOT NULL
);

-- What nodes cache: entries whose keys start with one of these prefixes.
-- The broker writes the list at start; the trigger below reads it.
CREATE TABLE cluster_watched (
    prefix TEXT PRIMARY KEY NOT NULL
);

-- Bumped with every change to a watched entry, in the same transaction: a
-- node that lost its LISTEN connection compares it with the one it saw
-- last, so a missed notification cannot leave it stale.
CREATE TABLE cluster_version (
    id      INT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO cluster_version (id, version) VALUES (1, 0);

-- A write to a watched entry, from any node (or by hand), bumps the version
-- and notifies every listening node with `<version>:<key>`. Notifications
-- are delivered at commit, and not at all on rollback; the version's row
-- lock is held to commit, so they arrive in version order, and a node that
-- sees a version skip knows it missed one.
CREATE FUNCTION cluster_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed TEXT;
    bumped BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD.key;
    ELSE
        changed := NEW.key;
    END IF;
    IF EXISTS (SELECT 1 FROM cluster_watched WHERE left(changed, length(prefix)) = prefix) THEN
        UPDATE cluster_version SET version = version + 1 WHERE id = 1 RETURNING version INTO bumped;
        PERFORM pg_notify('broker_changes', bumped || ':' || changed);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER entries_changed AFTER INSERT OR UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE PROCEDURE cluster_entry_changed();
