-- taskq's PostgreSQL schema, version 5: workflows (chains, groups, chords, DAGs;
-- docs/workflows.md). A workflow's record is the fields ``workflow/plan.py`` lists, one row
-- each in ``wf_fields``; the logic that advances it is ``workflow/advance.py``, run by the
-- broker in one transaction with the workflow's row locked (``workflows``).
--
-- A step's end reaches its workflow through ``wf_outbox``, written in the same transaction
-- as the end itself: by the settle of the step's task (with the outcome the worker
-- computed), by ``dead_letter`` (a step's task dead-lettered at fetch, or as poison) and by
-- ``cancel`` (a step's task cancelled by its id). Each entry is taken by ``wf_drain`` (right
-- after the settle, and from every worker's tick), which advances the workflow and deletes
-- the entry in one transaction: a step's end is applied exactly once, and one whose process
-- died before applying it is applied by the next drain. The outbox also keeps the settle
-- free of the workflow's locks: a settle waits for no workflow, and a drain waits for no
-- gate lock (version 4), so the two cannot deadlock.

CREATE TABLE {schema}.workflows (
    ns text NOT NULL,
    id text NOT NULL,
    expires_ms bigint,                   -- real time, once finished; NULL: kept
    PRIMARY KEY (ns, id)
);
CREATE INDEX workflows_expiry ON {schema}.workflows (expires_ms) WHERE expires_ms IS NOT NULL;

CREATE TABLE {schema}.wf_fields (
    ns text NOT NULL,
    wid text NOT NULL,
    field text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (ns, wid, field),
    FOREIGN KEY (ns, wid) REFERENCES {schema}.workflows (ns, id) ON DELETE CASCADE
);

CREATE TABLE {schema}.wf_outbox (
    ns text NOT NULL,
    n bigserial,
    queue text NOT NULL,
    tid text NOT NULL,
    status text,                         -- the step's outcome; NULL: read from its task
    payload bytea,
    PRIMARY KEY (ns, n)
);

-- the tasks of cancelled steps (workflow/advance.py's unqueue): a running one is asked to
-- stop (its worker learns of it at its next renewal), one not started is removed
CREATE FUNCTION {schema}.wf_unqueue(p_ns text, p_queue text, p_ids text[], p_now bigint)
RETURNS void LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_n int;
BEGIN
    UPDATE {schema}.tasks SET abort_ms = p_now
    WHERE ns = p_ns AND queue = p_queue AND id = ANY (p_ids) AND state = 'running'
      AND abort_ms IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['abort_requested'],
            ARRAY[v_n::bigint]);
    END IF;
    DELETE FROM {schema}.tasks
    WHERE ns = p_ns AND queue = p_queue AND id = ANY (p_ids)
      AND state IN ('queued', 'scheduled', 'throttled', 'waiting');
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['cancelled'], ARRAY[v_n::bigint]);
    END IF;
END
$$;

-- version 1's dead_letter, telling a step's workflow through the outbox
CREATE OR REPLACE FUNCTION {schema}.dead_letter(
    p_ns text, p_queue text, p_id text, p_now bigint, p_type text, p_message text,
    p_attempts int
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.tasks SET state = 'dead', at_ms = p_now, suspect = false, unaccounted = 0,
        error = convert_to(json_build_object(
            'status', 'dead',
            'error', json_build_object('type', p_type, 'message', p_message, 'traceback', ''),
            'attempts', p_attempts, 'finished_at', p_now)::text, 'UTF8')
    WHERE ns = p_ns AND queue = p_queue AND id = p_id;
    PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['dead'], ARRAY[1::bigint]);
    PERFORM pg_notify({schema}.channel(p_ns, 'done'), p_queue);
    -- a workflow's step: its workflow learns of it from the outbox (wf_drain)
    IF left(p_id, 3) = 'wf_' THEN
        INSERT INTO {schema}.wf_outbox (ns, queue, tid) VALUES (p_ns, p_queue, p_id);
    END IF;
END
$$;

-- version 4's cancel, likewise
CREATE OR REPLACE FUNCTION {schema}.cancel(
    p_ns text, p_queue text, p_id text, p_record bytea, p_abort boolean, p_now bigint,
    p_ttl bigint
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_state text;
    v_abort bigint;
BEGIN
    SELECT state, abort_ms INTO v_state, v_abort FROM {schema}.tasks
    WHERE ns = p_ns AND queue = p_queue AND id = p_id FOR UPDATE;
    IF v_state = 'running' AND p_abort THEN
        IF v_abort IS NULL THEN
            UPDATE {schema}.tasks SET abort_ms = v_now
            WHERE ns = p_ns AND queue = p_queue AND id = p_id;
            PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['abort_requested'],
                ARRAY[1::bigint]);
        END IF;
        RETURN 'aborting';
    END IF;
    IF v_state IS NULL OR v_state NOT IN ('queued', 'scheduled', 'throttled', 'waiting') THEN
        RETURN coalesce(v_state, '');
    END IF;
    DELETE FROM {schema}.tasks WHERE ns = p_ns AND queue = p_queue AND id = p_id;
    INSERT INTO {schema}.results AS r (ns, queue, id, record, expires_ms)
    VALUES (p_ns, p_queue, p_id, p_record, {schema}.clock_ms() + p_ttl)
    ON CONFLICT (ns, queue, id)
    DO UPDATE SET record = excluded.record, expires_ms = excluded.expires_ms;
    PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['cancelled'], ARRAY[1::bigint]);
    PERFORM pg_notify({schema}.channel(p_ns, 'done'), p_queue);
    IF left(p_id, 3) = 'wf_' THEN
        INSERT INTO {schema}.wf_outbox (ns, queue, tid) VALUES (p_ns, p_queue, p_id);
    END IF;
    RETURN 'cancelled';
END
$$;

-- version 1's fold, which also removes the workflows past their TTL, and runs with
-- ``enable_seqscan`` back on. Version 3 turned it off for ``fetch``, and ``fold`` (run by one
-- fetch in twenty) inherited that: its deletes then went through indexes, visiting every
-- dead row's heap page at random (a server without autovacuum keeps many), where a scan of
-- the table reads them in order. Each fold took 100 ms and more: one pick-up in twenty
-- waited that long (p95 143 ms, p99 181 ms, and processing 8,700 tasks/s rather than
-- 10,500, in benchmarks/pg_run.py --full); with the setting back on here, p95 is 4.2 ms
CREATE OR REPLACE FUNCTION {schema}.fold(p_ns text) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = on AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('taskq.fold:' || p_ns)) THEN
        RETURN;
    END IF;
    WITH moved AS (
        DELETE FROM {schema}.stats_log WHERE ns = p_ns RETURNING queue, name, delta
    )
    INSERT INTO {schema}.stats AS s (ns, queue, name, value)
    SELECT p_ns, queue, name, sum(delta) FROM moved GROUP BY queue, name ORDER BY queue, name
    ON CONFLICT (ns, queue, name) DO UPDATE SET value = s.value + excluded.value;
    -- and what has expired goes, in bounded batches (the tables stay their size under a
    -- sustained run; autovacuum reclaims the space): results and idempotency keys past
    -- their TTL, records (heartbeats, locks) past theirs
    DELETE FROM {schema}.results WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.results WHERE expires_ms <= {schema}.clock_ms() LIMIT 1000));
    DELETE FROM {schema}.idempotency WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.idempotency WHERE expires_ms <= {schema}.clock_ms()
        LIMIT 1000));
    DELETE FROM {schema}.records WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.records WHERE expires_ms <= {schema}.clock_ms() LIMIT 100));
    -- finished workflows past their TTL, with their fields
    DELETE FROM {schema}.workflows WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.workflows WHERE expires_ms <= {schema}.clock_ms() LIMIT 100));
END
$$;
