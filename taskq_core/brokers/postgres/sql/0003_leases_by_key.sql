-- taskq's PostgreSQL schema, version 3: a lease is looked up by its primary key, and
-- ``settle`` reads its outcomes as sets.
--
-- Version 1 looked a lease up by ``id``, ``queue``, ``ns`` and ``state = 'running'``. Once a
-- function's plan is cached (a generic plan, after five calls on one connection), the
-- planner took the partial index of running tasks (``tasks_timed``) for that and filtered by
-- id: each lookup read every running task of the queue, so settling, renewing or releasing
-- n leases among r running tasks cost n × r (a batch of 9,000 took 18 s). Here the state is
-- compared through an expression (``state || ''``) that no index matches, so only the
-- primary key can serve the lookup: one row each. And the three functions run with
-- ``enable_seqscan`` off: with statistics that call the table tiny (a fresh backlog, a
-- server without autovacuum), a generic plan read the whole table for each lease rather
-- than take the key.
--
-- Version 1's ``settle`` also
-- read its arrays by subscript (``p_kinds[n]``) in each step; an element of an array of text
-- or bytea is found by walking the array from its start, so a batch of n outcomes cost n²
-- steps. Each outcome's fields are now read once, by unnest, and
-- joined by position. Two statements, as before: the first locks the leases still held (and
-- waits for a renewal in flight); the second, with a snapshot taken after those locks,
-- writes every outcome, so it sees the very row versions it locked; it reaches them by
-- their addresses as a list (``ctid = ANY (...)``: a TID scan whatever the plan), never by
-- a join, which a generic plan may turn into a scan of the table.

CREATE OR REPLACE FUNCTION {schema}.settle(
    p_ns text, p_now bigint, p_queues text[], p_ids text[], p_fences int[], p_kinds text[],
    p_tasks text[], p_records bytea[], p_delays bigint[], p_bodies bytea[], p_ttl bigint,
    p_stat_queues text[], p_stat_names text[], p_stat_values bigint[]
) RETURNS int[] LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_real bigint := {schema}.clock_ms();
    v_held bigint[];
    v_rows tid[];
    v_stale int[];
BEGIN
    -- the outcomes whose lease is still held, each task once (an outcome listed twice
    -- settles once): locked by primary key, one lookup each, whatever the statistics say
    SELECT coalesce(array_agg(n ORDER BY n), '{}'), coalesce(array_agg(row_ ORDER BY n), '{}')
    INTO v_held, v_rows
    FROM (
        SELECT DISTINCT ON (o.q, o.id) o.n, t.ctid AS row_
        FROM unnest(p_queues, p_ids, p_fences) WITH ORDINALITY AS o(q, id, f, n)
        CROSS JOIN LATERAL (
            SELECT ctid FROM {schema}.tasks t
            WHERE t.id = o.id AND t.queue = o.q AND t.ns = p_ns AND t.state || '' = 'running'
              AND t.fence = o.f
            FOR UPDATE
        ) t
        ORDER BY o.q, o.id, o.n
    ) h;
    WITH o AS (
        SELECT * FROM unnest(p_queues, p_ids, p_kinds, p_tasks, p_records, p_delays, p_bodies)
            WITH ORDINALITY AS o(q, id, kind, task, rec, delay, body, n)
    ), held AS (
        SELECT o.*, x.row_ FROM unnest(v_held, v_rows) AS x(n, row_) JOIN o USING (n)
    ), gone AS (
        -- final outcomes: the result kept, the task gone (ok, expired, aborted) ...
        DELETE FROM {schema}.tasks
        WHERE ctid = ANY (ARRAY(
            SELECT h.row_ FROM held h WHERE h.kind IN ('ok', 'expired', 'aborted')))
    ), dead AS (
        -- ... or dead-lettered (failed, dead), its error kept with it
        UPDATE {schema}.tasks t SET state = h.kind, at_ms = v_now, unaccounted = 0,
            error = h.rec, progress = NULL, abort_ms = NULL
        FROM held h
        WHERE t.ctid = ANY (ARRAY(
                SELECT x.row_ FROM held x WHERE x.kind IN ('failed', 'dead')))
          AND h.row_ = t.ctid
    ), retried AS (
        UPDATE {schema}.tasks t SET body = h.body, unaccounted = 0, suspect = false,
            state = CASE WHEN h.delay > 0 THEN 'scheduled' ELSE 'queued' END,
            at_ms = CASE WHEN h.delay > 0 THEN v_now + h.delay ELSE 0 END,
            seq = nextval('{schema}.queue_order')
        FROM held h
        WHERE t.ctid = ANY (ARRAY(SELECT x.row_ FROM held x WHERE x.kind = 'retry'))
          AND h.row_ = t.ctid
    ), kept AS (
        INSERT INTO {schema}.results AS r (ns, queue, id, record, expires_ms)
        SELECT p_ns, h.q, h.id, h.rec, v_real + p_ttl FROM held h WHERE h.kind <> 'retry'
        ON CONFLICT (ns, queue, id)
        DO UPDATE SET record = excluded.record, expires_ms = excluded.expires_ms
    ), stale AS (
        SELECT o.n, o.q FROM o WHERE o.n NOT IN (SELECT unnest(v_held))
    ), counted AS (
        INSERT INTO {schema}.stats_log (ns, queue, name, delta)
        SELECT p_ns, q, name, sum(v) FROM (
            SELECT h.q, h.kind AS name, 1::bigint AS v FROM held h
            UNION ALL
            SELECT h.q, h.kind || '|' || h.task, 1 FROM held h
            UNION ALL
            SELECT s.q, 'stale_acks', 1 FROM stale s
            UNION ALL
            SELECT * FROM unnest(p_stat_queues, p_stat_names, p_stat_values)
        ) c GROUP BY q, name
    ), woken AS (
        SELECT pg_notify({schema}.channel(p_ns, 'wake'), q)
        FROM (SELECT DISTINCT h.q FROM held h WHERE h.kind = 'retry') w
    ), done AS (
        SELECT pg_notify({schema}.channel(p_ns, 'done'), q)
        FROM (SELECT DISTINCT h.q FROM held h WHERE h.kind <> 'retry') d
    )
    -- the notifications are read here, so that they are sent (a CTE nothing reads is not
    -- run unless it writes)
    SELECT coalesce((SELECT array_agg(n::int ORDER BY n) FROM stale), '{}')
    INTO v_stale
    FROM (SELECT count(*) FROM woken) a, (SELECT count(*) FROM done) b;
    RETURN v_stale;
END
$$;

-- version 1's renew, its lookup by primary key (above)
CREATE OR REPLACE FUNCTION {schema}.renew(
    p_ns text, p_now bigint, p_lease bigint, p_queues text[], p_ids text[], p_fences int[],
    p_progress bytea[], OUT o_lost int[], OUT o_aborting int[]
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_abort bigint;
    i int;
BEGIN
    o_lost := '{}'; o_aborting := '{}';
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        UPDATE {schema}.tasks SET at_ms = v_now + p_lease,
            progress = coalesce(p_progress[i], progress)
        WHERE id = p_ids[i] AND queue = p_queues[i] AND ns = p_ns AND state || '' = 'running'
          AND fence = p_fences[i]
        RETURNING abort_ms INTO v_abort;
        IF NOT FOUND THEN
            o_lost := o_lost || i;
        ELSIF v_abort IS NOT NULL THEN
            o_aborting := o_aborting || i;
        END IF;
    END LOOP;
END
$$;

-- version 1's release, its lookup by primary key (above)
CREATE OR REPLACE FUNCTION {schema}.release(
    p_ns text, p_now bigint, p_type text, p_reason text, p_max int,
    p_queues text[], p_ids text[], p_fences int[]
) RETURNS int LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_released int := 0;
    i int;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        PERFORM 1 FROM {schema}.tasks
        WHERE id = p_ids[i] AND queue = p_queues[i] AND ns = p_ns AND state || '' = 'running'
          AND fence = p_fences[i]
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        v_released := v_released + 1;
        IF p_type <> '' THEN
            PERFORM {schema}.no_outcome(p_ns, p_queues[i], p_ids[i], v_now, p_type, p_reason,
                p_max);
            PERFORM {schema}.bump(p_ns, ARRAY[p_queues[i]], ARRAY['released_counted'],
                ARRAY[1::bigint]);
        ELSE
            UPDATE {schema}.tasks SET state = 'queued', at_ms = 0, suspect = false,
                unaccounted = unaccounted - 1, seq = -nextval('{schema}.queue_order')
            WHERE id = p_ids[i] AND queue = p_queues[i] AND ns = p_ns;
            PERFORM {schema}.bump(p_ns, ARRAY[p_queues[i]], ARRAY['released'], ARRAY[1::bigint]);
            PERFORM pg_notify({schema}.channel(p_ns, 'wake'), p_queues[i]);
        END IF;
    END LOOP;
    RETURN v_released;
END
$$;

-- the fetch likewise: its scans of one queue have their partial indexes (tasks_ready,
-- tasks_timed), which statistics that call the table tiny, or its running tasks many, made
-- a generic plan pass over for a scan of the whole table, at every fetch
ALTER FUNCTION {schema}.fetch(text, text[], int, bigint, boolean, bigint, int)
    SET enable_seqscan = off;
