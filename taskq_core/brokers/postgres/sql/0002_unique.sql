-- taskq's PostgreSQL schema, version 2: unique tasks (flow control's ``unique=``,
-- docs/flow-control.md), as enqueue.lua holds them in Redis.
--
-- A unique key is held by one task while that task is queued or running (``mode`` 'f':
-- until it finishes) or only until its first lease ('s': until it starts), and at most until
-- ``until_ms`` when the task has a window. Whether the holder still holds is read from the
-- holder's own row when the key is claimed again, so no other operation (fetch, settle,
-- cancel, dead-letter) has anything to do for it: the row of a key whose holder ended stays
-- until the key's next claim overwrites it (one small row per key in use).

CREATE TABLE {schema}.uniques (
    ns text NOT NULL,
    queue text NOT NULL,
    key text NOT NULL,
    holder text NOT NULL,
    mode "char" NOT NULL,                -- 's': until started, 'f': until finished
    until_ms bigint,                     -- the window's end; NULL: none
    PRIMARY KEY (ns, queue, key)
);

-- The holder of ``p_key`` when it still holds it (the enqueue returns its id instead of
-- adding ``p_id``), else NULL after making ``p_id`` the holder. The key's row is locked
-- until the transaction ends: a second enqueue of the same key waits for the first to
-- commit or roll back (in an application's transaction too), then reads what it left.
CREATE FUNCTION {schema}.unique_claim(
    p_ns text, p_queue text, p_key text, p_mode "char", p_window bigint, p_id text,
    p_now bigint
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_until bigint := CASE WHEN p_window > 0 THEN p_now + p_window END;
    v_holder text;
    v_mode "char";
    v_end bigint;
BEGIN
    -- at most twice: the row can only vanish between the two statements when the
    -- application's namespace is being deleted
    FOR attempt IN 1 .. 2 LOOP
        INSERT INTO {schema}.uniques (ns, queue, key, holder, mode, until_ms)
        VALUES (p_ns, p_queue, p_key, p_id, p_mode, v_until)
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            RETURN NULL;
        END IF;
        SELECT holder, mode, until_ms INTO v_holder, v_mode, v_end FROM {schema}.uniques
        WHERE ns = p_ns AND queue = p_queue AND key = p_key
        FOR UPDATE;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        IF (v_end IS NULL OR v_end > p_now) AND EXISTS (
            SELECT 1 FROM {schema}.tasks t
            WHERE t.id = v_holder AND t.queue = p_queue AND t.ns = p_ns
              AND t.body IS NOT NULL  -- a holder whose message is gone holds nothing
              AND t.state IN ('queued', 'scheduled', 'running')
              AND (v_mode = 'f' OR t.fence = 0)) THEN
            RETURN v_holder;
        END IF;
        UPDATE {schema}.uniques SET holder = p_id, mode = p_mode, until_ms = v_until
        WHERE ns = p_ns AND queue = p_queue AND key = p_key;
        RETURN NULL;
    END LOOP;
    RETURN NULL;
END
$$;

-- version 1's enqueue, with the unique keys of the batch (``p_ukeys``, NULL: none; their
-- modes and windows): a batch with one goes through the per-item path, as one with an
-- idempotency key does
DROP FUNCTION {schema}.enqueue(text, bigint, text[], text[], text[], bytea[], bigint[],
    bigint[], text[], bigint);
CREATE FUNCTION {schema}.enqueue(
    p_ns text, p_now bigint, p_queues text[], p_ids text[], p_tasks text[], p_bodies bytea[],
    p_due bigint[], p_delay bigint[], p_keys text[], p_idem_ttl bigint,
    p_ukeys text[], p_umodes "char"[], p_uwindows bigint[]
) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_real bigint := {schema}.clock_ms();
    v_out text[] := '{}';
    v_q text[] := '{}';
    v_n text[] := '{}';
    v_one bigint[] := '{}';
    v_due bigint;
    v_earlier text;
    i int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unnest(p_keys) k WHERE k IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM unnest(p_ukeys) k WHERE k IS NOT NULL) THEN
        -- no idempotency or unique key (the usual enqueue): one set-based insert, the batch
        -- in order; a known id (queued, running, or with a kept result) is left as it is
        WITH added AS (
            INSERT INTO {schema}.tasks AS t (ns, queue, id, task, body, state, seq, at_ms)
            SELECT p_ns, q, tid, task, body,
                CASE WHEN due > v_now THEN 'scheduled' ELSE 'queued' END,
                nextval('{schema}.queue_order'),
                CASE WHEN due > v_now THEN due ELSE 0 END
            FROM (
                SELECT u.q, u.tid, u.task, u.body, u.n,
                    CASE WHEN u.delay > 0 THEN v_now + u.delay ELSE u.due END AS due
                FROM unnest(p_queues, p_ids, p_tasks, p_bodies, p_due, p_delay)
                    WITH ORDINALITY AS u(q, tid, task, body, due, delay, n)
                WHERE NOT EXISTS (
                    SELECT 1 FROM {schema}.results r
                    WHERE r.ns = p_ns AND r.queue = u.q AND r.id = u.tid
                      AND r.expires_ms > v_real)
                ORDER BY u.n
            ) items
            ON CONFLICT DO NOTHING
            RETURNING t.queue, t.task
        ), counted AS (
            INSERT INTO {schema}.stats_log (ns, queue, name, delta)
            SELECT p_ns, queue, 'enqueued|' || task, count(*) FROM added GROUP BY queue, task
            RETURNING queue
        )
        SELECT coalesce(array_agg(DISTINCT queue), '{}') INTO v_q FROM counted;
        PERFORM pg_notify({schema}.channel(p_ns, 'wake'), q) FROM unnest(v_q) q;
        RETURN p_ids;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        IF EXISTS (SELECT 1 FROM {schema}.tasks
                   WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i])
           OR EXISTS (SELECT 1 FROM {schema}.results
                      WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i]
                        AND expires_ms > v_real) THEN
            v_out := v_out || p_ids[i];
            CONTINUE;
        END IF;
        IF p_keys[i] IS NOT NULL THEN
            SELECT id INTO v_earlier FROM {schema}.idempotency
            WHERE ns = p_ns AND queue = p_queues[i] AND key = p_keys[i] AND expires_ms > v_real
            FOR UPDATE;
            IF FOUND THEN
                v_out := v_out || v_earlier;
                CONTINUE;
            END IF;
        END IF;
        -- the unique key before the idempotency key is written: an enqueue answered with
        -- the holder's id leaves no key pointing at a task that was never added
        IF p_ukeys[i] IS NOT NULL THEN
            v_earlier := {schema}.unique_claim(p_ns, p_queues[i], p_ukeys[i], p_umodes[i],
                                               p_uwindows[i], p_ids[i], v_now);
            IF v_earlier IS NOT NULL THEN
                v_out := v_out || v_earlier;
                CONTINUE;
            END IF;
        END IF;
        IF p_keys[i] IS NOT NULL THEN
            INSERT INTO {schema}.idempotency AS k (ns, queue, key, id, expires_ms)
            VALUES (p_ns, p_queues[i], p_keys[i], p_ids[i], v_real + p_idem_ttl)
            ON CONFLICT (ns, queue, key)
            DO UPDATE SET id = excluded.id, expires_ms = excluded.expires_ms;
        END IF;
        v_due := CASE WHEN p_delay[i] > 0 THEN v_now + p_delay[i] ELSE p_due[i] END;
        INSERT INTO {schema}.tasks (ns, queue, id, task, body, state, seq, at_ms)
        VALUES (p_ns, p_queues[i], p_ids[i], p_tasks[i], p_bodies[i],
                CASE WHEN v_due > v_now THEN 'scheduled' ELSE 'queued' END,
                nextval('{schema}.queue_order'),
                CASE WHEN v_due > v_now THEN v_due ELSE 0 END)
        ON CONFLICT DO NOTHING;  -- the same id sent twice at once: the first one stays
        IF NOT FOUND THEN
            v_out := v_out || p_ids[i];
            CONTINUE;
        END IF;
        v_out := v_out || p_ids[i];
        v_q := v_q || p_queues[i];
        v_n := v_n || ('enqueued|' || p_tasks[i]);
        v_one := v_one || 1::bigint;
    END LOOP;
    IF array_length(v_q, 1) > 0 THEN
        PERFORM {schema}.bump(p_ns, v_q, v_n, v_one);
        PERFORM pg_notify({schema}.channel(p_ns, 'wake'), q)
        FROM (SELECT DISTINCT unnest(v_q) AS q) d;
    END IF;
    RETURN v_out;
END
$$;
