-- The fleet database, the same for SQLite and PostgreSQL. Times are epoch seconds (UTC).
-- windows: one row per (device_id, seq), whatever how often the window was delivered.
CREATE TABLE IF NOT EXISTS windows (
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    window_start DOUBLE PRECISION NOT NULL,   -- the kiosk's window, so a late window lands in its own slot
    window_end DOUBLE PRECISION NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    frames BIGINT NOT NULL,
    model_version TEXT NOT NULL,
    impressions BIGINT NOT NULL,
    visitors BIGINT NOT NULL,
    watchers BIGINT NOT NULL,
    dwell_s_mean DOUBLE PRECISION,
    attention_s_mean DOUBLE PRECISION,
    suppressed INTEGER NOT NULL,              -- 1: fewer visitors than k-anonymity, no breakdowns
    gender TEXT,                              -- JSON label -> count, NULL when suppressed
    age_groups TEXT,
    emotions TEXT,
    female_share DOUBLE PRECISION,
    dominant_emotion TEXT,
    received_at DOUBLE PRECISION NOT NULL,    -- first delivery to an ingest worker
    ingested_at DOUBLE PRECISION NOT NULL,    -- the write that stored it
    deliveries INTEGER NOT NULL DEFAULT 1,    -- how often the broker delivered it (at least once)
    clock_synced INTEGER NOT NULL DEFAULT 1,  -- 0: the kiosk's clock was not trusted; filed under received_at
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX IF NOT EXISTS windows_by_start ON windows (window_start);
-- kiosks: one row per kiosk: its stored seq span and its latest status and availability.
CREATE TABLE IF NOT EXISTS kiosks (
    device_id TEXT PRIMARY KEY,
    low_seq BIGINT,
    high_seq BIGINT,
    windows BIGINT NOT NULL DEFAULT 0,
    last_seen DOUBLE PRECISION,               -- latest status time or window arrival
    status_time DOUBLE PRECISION,             -- the kiosk's clock in its latest status
    status_received_at DOUBLE PRECISION,      -- when that status arrived
    status TEXT,                              -- the latest status object (JSON)
    model_version TEXT,
    app_version TEXT,
    state TEXT,
    spool_depth BIGINT,
    spool_dropped BIGINT,
    availability TEXT,                        -- online / offline (the kiosk's last will)
    availability_at DOUBLE PRECISION
);
-- gaps: missing seq ranges per kiosk; filled_at is set once every window in the range arrived.
CREATE TABLE IF NOT EXISTS gaps (
    device_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    detected_at DOUBLE PRECISION NOT NULL,
    filled_at DOUBLE PRECISION,
    PRIMARY KEY (device_id, first_seq)
);
-- rejected: messages on kiosk topics that could not be read, with the reason.
CREATE TABLE IF NOT EXISTS rejected (
    received_at DOUBLE PRECISION NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT
);
