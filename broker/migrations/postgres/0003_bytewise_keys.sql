-- Keys and lease ids compare byte by byte, whatever the database's own
-- collation: listings come back in the same order as on SQLite, and a
-- prefix query (`LIKE 'mounts/x/%'`) can use the primary key's index,
-- which under a linguistic collation (en_US.UTF-8, ICU) it cannot.
ALTER TABLE entries ALTER COLUMN key TYPE TEXT COLLATE "C";
ALTER TABLE leases ALTER COLUMN id TYPE TEXT COLLATE "C";
