-- taskq's PostgreSQL schema, version 1. Every table carries ``ns`` (the application's
-- key_prefix), as every Redis key starts with it: several applications, or tests, share a
-- database without seeing each other's tasks. ``{schema}`` is replaced by the schema name.
-- The functions below are the broker's operations, each one atomic step and one round trip,
-- as the Lua scripts are for Redis (docs/postgres.md, "How it works").

CREATE TABLE {schema}.tasks (
    ns text NOT NULL,
    queue text NOT NULL,
    id text NOT NULL,
    task text NOT NULL DEFAULT '',
    body bytea,                          -- NULL: the message went missing (dead-lettered)
    state text NOT NULL,                 -- queued | scheduled | running | failed | dead
    seq bigint NOT NULL DEFAULT 0,       -- queued: smallest first (a hand-back: negative)
    suspect boolean NOT NULL DEFAULT false,
    -- scheduled: when due; running: the lease's deadline; failed/dead: when dead-lettered
    at_ms bigint NOT NULL DEFAULT 0,
    fence integer NOT NULL DEFAULT 0,    -- deliveries so far: a lease's fencing token
    unaccounted integer NOT NULL DEFAULT 0,  -- deliveries without an outcome (poison rule)
    error bytea,
    progress bytea,
    abort_ms bigint,
    -- the id first: a lookup gives all three columns, and a query on one queue (ns, queue)
    -- can then only take the partial indexes below, which hold its state's rows in order;
    -- with (ns, queue, id) first, a planner with stale statistics (autovacuum off, a fresh
    -- backlog) read the whole queue through the key to find its few queued or suspect rows
    PRIMARY KEY (id, queue, ns)
) WITH (fillfactor = 70);  -- room for HOT updates: a task's row changes at every step
CREATE INDEX tasks_ready ON {schema}.tasks (ns, queue, suspect, seq) WHERE state = 'queued';
CREATE INDEX tasks_timed ON {schema}.tasks (ns, queue, state, at_ms) WHERE state <> 'queued';

CREATE TABLE {schema}.results (
    ns text NOT NULL,
    queue text NOT NULL,
    id text NOT NULL,
    record bytea NOT NULL,
    expires_ms bigint NOT NULL,          -- real time, as Redis's PX
    PRIMARY KEY (ns, queue, id)
);
CREATE INDEX results_expiry ON {schema}.results (expires_ms);

CREATE TABLE {schema}.idempotency (
    ns text NOT NULL,
    queue text NOT NULL,
    key text NOT NULL,
    id text NOT NULL,
    expires_ms bigint NOT NULL,
    PRIMARY KEY (ns, queue, key)
);
CREATE INDEX idempotency_expiry ON {schema}.idempotency (expires_ms);

-- per-queue counters (``queue``) and the named counter groups (``queue`` = '#' || group)
CREATE TABLE {schema}.stats (
    ns text NOT NULL,
    queue text NOT NULL,
    name text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (ns, queue, name)
);

-- small records by space: heartbeats, locks, alerts, autoscaler records, the data marker,
-- custom metrics; ``expires_ms`` (real time) NULL: kept until replaced
CREATE TABLE {schema}.records (
    ns text NOT NULL,
    space text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    expires_ms bigint,
    PRIMARY KEY (ns, space, key)
);

-- time series: SLA snapshots, the dashboard's history, the alert history
CREATE TABLE {schema}.series (
    ns text NOT NULL,
    series text NOT NULL,
    at_ms bigint NOT NULL,
    n bigserial,
    data bytea NOT NULL,
    PRIMARY KEY (ns, series, at_ms, n)
);

CREATE SEQUENCE {schema}.queue_order;

-- the broker's clock (Redis's TIME): every lease, delay and due time shares it
CREATE FUNCTION {schema}.clock_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

-- the channel woken workers listen on, one per namespace (identifiers stop at 63 bytes)
CREATE FUNCTION {schema}.channel(p_ns text, p_kind text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'taskq_' || p_kind || '_' || left(md5(p_ns), 20)
$$;

-- counts are appended, never updated in place: a counter row updated by every enqueue
-- would be locked by each open transaction that enqueued (a transactional enqueue holds
-- it until the application commits), and every other enqueue would wait for it.
-- ``fold`` moves the appended counts into ``stats`` now and then; readers add both.
CREATE TABLE {schema}.stats_log (
    ns text NOT NULL,
    queue text NOT NULL,
    name text NOT NULL,
    delta bigint NOT NULL
);
CREATE INDEX stats_log_ns ON {schema}.stats_log (ns, queue);

CREATE FUNCTION {schema}.bump(p_ns text, p_queues text[], p_names text[], p_by bigint[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO {schema}.stats_log (ns, queue, name, delta)
    SELECT p_ns, q, n, sum(v) FROM unnest(p_queues, p_names, p_by) AS u(q, n, v)
    GROUP BY q, n
$$;

-- housekeeping, from a fetch now and then: fold the appended counts of ``p_ns`` into
-- ``stats`` (one folder at a time, the others skip; rows taken in one order, no deadlock;
-- only committed counts are seen), and remove what has expired
CREATE FUNCTION {schema}.fold(p_ns text) RETURNS void LANGUAGE plpgsql AS $$
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
END
$$;

-- a queue's (or a counter group's) counts: folded and appended
CREATE FUNCTION {schema}.counts(p_ns text, p_queue text, OUT o_names text[], OUT o_values bigint[])
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(name ORDER BY name), '{}'), coalesce(array_agg(v ORDER BY name), '{}')
    FROM (
        SELECT name, sum(value)::bigint AS v FROM (
            SELECT name, value FROM {schema}.stats WHERE ns = p_ns AND queue = p_queue
            UNION ALL
            SELECT name, delta FROM {schema}.stats_log WHERE ns = p_ns AND queue = p_queue
        ) both_ GROUP BY name
    ) c
$$;

-- enqueue.lua: add tasks; a known id (queued, running or with a kept result) is not added
-- again, and an idempotency key still held returns the first task's id
CREATE FUNCTION {schema}.enqueue(
    p_ns text, p_now bigint, p_queues text[], p_ids text[], p_tasks text[], p_bodies bytea[],
    p_due bigint[], p_delay bigint[], p_keys text[], p_idem_ttl bigint
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
    IF NOT EXISTS (SELECT 1 FROM unnest(p_keys) k WHERE k IS NOT NULL) THEN
        -- no idempotency key (the usual enqueue): one set-based insert, the batch in order;
        -- a known id (queued, running, or with a kept result) is left as it is
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

-- _lib.lua's dead_letter: a task ends in the dead-letter queue with an error record
CREATE FUNCTION {schema}.dead_letter(
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
END
$$;

-- _lib.lua's no_outcome (the poison rule): a delivery ended without an outcome
CREATE FUNCTION {schema}.no_outcome(
    p_ns text, p_queue text, p_id text, p_now bigint, p_type text, p_reason text,
    p_max int
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_without int;
BEGIN
    SELECT unaccounted INTO v_without FROM {schema}.tasks
    WHERE ns = p_ns AND queue = p_queue AND id = p_id;
    IF v_without >= p_max THEN
        PERFORM {schema}.dead_letter(p_ns, p_queue, p_id, p_now, p_type,
            format('delivered %s times without finishing; %s', v_without, p_reason), v_without);
        RETURN;
    END IF;
    UPDATE {schema}.tasks SET state = 'queued', suspect = true, at_ms = 0,
        seq = nextval('{schema}.queue_order')
    WHERE ns = p_ns AND queue = p_queue AND id = p_id;
    PERFORM pg_notify({schema}.channel(p_ns, 'wake'), p_queue);
END
$$;

-- fetch.lua: take back lapsed leases, move due tasks to their queue, then lease up to
-- p_want tasks, queues in priority order; a suspect only alone (p_alone), and only one
CREATE FUNCTION {schema}.fetch(
    p_ns text, p_queues text[], p_want int, p_now bigint, p_alone boolean, p_lease bigint,
    p_max int,
    OUT o_queues text[], OUT o_ids text[], OUT o_fences int[], OUT o_bodies bytea[],
    OUT o_next_due bigint, OUT o_now bigint, OUT o_suspects int, OUT o_suspect boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_deadline bigint;
    v_queue text;
    v_row record;
    v_got int := 0;
    v_first bigint;
    v_examine int := p_want * 4 + 100;
    v_expired int;
    v_rows tid[];
BEGIN
    v_deadline := v_now + p_lease;
    IF random() < 0.05 THEN
        PERFORM {schema}.fold(p_ns);  -- keeps the appended counts short
    END IF;
    o_queues := '{}'; o_ids := '{}'; o_fences := '{}'; o_bodies := '{}';
    o_now := v_now; o_suspects := 0; o_suspect := false;
    FOREACH v_queue IN ARRAY p_queues LOOP
        v_expired := 0;
        FOR v_row IN
            SELECT id FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state = 'running' AND at_ms <= v_now
            ORDER BY at_ms, id LIMIT 100 FOR UPDATE SKIP LOCKED
        LOOP
            v_expired := v_expired + 1;
            PERFORM {schema}.no_outcome(p_ns, v_queue, v_row.id, v_now, 'PoisonTask',
                'its worker died or froze each time', p_max);
        END LOOP;
        IF v_expired > 0 THEN
            PERFORM {schema}.bump(p_ns, ARRAY[v_queue], ARRAY['lease_expired'],
                ARRAY[v_expired::bigint]);
        END IF;
        FOR v_row IN
            SELECT id FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state = 'scheduled' AND at_ms <= v_now
            ORDER BY at_ms, id LIMIT 1000 FOR UPDATE SKIP LOCKED
        LOOP
            UPDATE {schema}.tasks SET state = 'queued', at_ms = 0,
                seq = nextval('{schema}.queue_order')
            WHERE ns = p_ns AND queue = v_queue AND id = v_row.id;
        END LOOP;
        SELECT min(at_ms) INTO v_first FROM {schema}.tasks
        WHERE ns = p_ns AND queue = v_queue AND state = 'scheduled';
        IF v_first IS NOT NULL AND (o_next_due IS NULL OR v_first < o_next_due) THEN
            o_next_due := v_first;
        END IF;
    END LOOP;
    -- suspects: one, alone, to a caller that holds nothing
    FOREACH v_queue IN ARRAY p_queues LOOP
        WHILE p_alone AND p_want > 0 AND NOT o_suspect LOOP
            SELECT id, body INTO v_row FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state = 'queued' AND suspect
            ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN NOT FOUND;
            IF v_row.body IS NULL THEN
                PERFORM {schema}.bump(p_ns, ARRAY[v_queue], ARRAY['orphans'], ARRAY[1::bigint]);
                PERFORM {schema}.dead_letter(p_ns, v_queue, v_row.id, v_now, 'MissingMessage',
                    'message body missing', 0);
                CONTINUE;
            END IF;
            UPDATE {schema}.tasks SET state = 'running', suspect = false, at_ms = v_deadline,
                fence = fence + 1, unaccounted = unaccounted + 1
            WHERE ns = p_ns AND queue = v_queue AND id = v_row.id
            RETURNING queue, id, fence, body INTO v_row;
            o_queues := o_queues || v_row.queue; o_ids := o_ids || v_row.id;
            o_fences := o_fences || v_row.fence; o_bodies := o_bodies || v_row.body;
            o_suspect := true;
            v_got := 1;
        END LOOP;
        o_suspects := o_suspects + (SELECT count(*) FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state = 'queued' AND suspect);
    END LOOP;
    IF o_suspect THEN
        RETURN;
    END IF;
    FOREACH v_queue IN ARRAY p_queues LOOP
        WHILE v_got < p_want AND v_examine > 0 LOOP
            -- the rows first (locked), then the update by their physical address: a join,
            -- or ``id = ANY``, let the planner scan the whole queue when it misjudged it
            -- (a fresh backlog, stale statistics, a generic plan)
            v_rows := ARRAY(
                SELECT ctid FROM {schema}.tasks
                WHERE ns = p_ns AND queue = v_queue AND state = 'queued' AND NOT suspect
                ORDER BY seq LIMIT least(p_want - v_got, v_examine)
                FOR UPDATE SKIP LOCKED
            );
            EXIT WHEN cardinality(v_rows) = 0;
            WITH leased AS (
                UPDATE {schema}.tasks t SET state = 'running', at_ms = v_deadline,
                    fence = t.fence + 1, unaccounted = t.unaccounted + 1
                WHERE t.ctid = ANY (v_rows)
                RETURNING t.id, t.fence, t.body, t.seq
            )
            SELECT count(*)::int AS n,
                coalesce(array_agg(id ORDER BY seq) FILTER (WHERE body IS NOT NULL), '{}') AS ids,
                coalesce(array_agg(fence ORDER BY seq) FILTER (WHERE body IS NOT NULL), '{}')
                    AS fences,
                coalesce(array_agg(body ORDER BY seq) FILTER (WHERE body IS NOT NULL), '{}')
                    AS bodies,
                coalesce(array_agg(id) FILTER (WHERE body IS NULL), '{}') AS missing
            INTO v_row FROM leased;
            EXIT WHEN v_row.n = 0;
            v_examine := v_examine - v_row.n;
            o_ids := o_ids || v_row.ids;
            o_fences := o_fences || v_row.fences;
            o_bodies := o_bodies || v_row.bodies;
            o_queues := o_queues || array_fill(v_queue, ARRAY[cardinality(v_row.ids)]);
            v_got := v_got + cardinality(v_row.ids);
            IF cardinality(v_row.missing) > 0 THEN
                PERFORM {schema}.bump(p_ns, ARRAY[v_queue], ARRAY['orphans'],
                    ARRAY[cardinality(v_row.missing)::bigint]);
                PERFORM {schema}.dead_letter(p_ns, v_queue, m, v_now, 'MissingMessage',
                    'message body missing', 0)
                FROM unnest(v_row.missing) AS m;
            END IF;
        END LOOP;
        IF v_got >= p_want THEN
            -- more may wait: wake another sleeper, as fetch.lua passes the token on
            PERFORM pg_notify({schema}.channel(p_ns, 'wake'), v_queue);
            EXIT;
        END IF;
    END LOOP;
END
$$;

-- settle.lua: apply the outcomes of deliveries; returns the (1-based) positions of the
-- stale ones (the lease was lost: settled, or leased again elsewhere), which change nothing
CREATE FUNCTION {schema}.settle(
    p_ns text, p_now bigint, p_queues text[], p_ids text[], p_fences int[], p_kinds text[],
    p_tasks text[], p_records bytea[], p_delays bigint[], p_bodies bytea[], p_ttl bigint,
    p_stat_queues text[], p_stat_names text[], p_stat_values bigint[]
) RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_real bigint := {schema}.clock_ms();
    v_held int[];
    v_rows tid[];
    v_stale int[];
    v_final int[];
    i int;
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
            WHERE t.ns = p_ns AND t.queue = o.q AND t.id = o.id AND t.state = 'running'
              AND t.fence = o.f
            FOR UPDATE
        ) t
        ORDER BY o.q, o.id, o.n
    ) h;
    v_stale := ARRAY(
        SELECT n FROM generate_series(1, coalesce(array_length(p_ids, 1), 0)) n
        WHERE n <> ALL (v_held) ORDER BY n
    );
    -- final outcomes: the result kept, the task gone (ok, expired, aborted) or dead-lettered
    v_final := ARRAY(SELECT n FROM unnest(v_held) n WHERE p_kinds[n] <> 'retry');
    DELETE FROM {schema}.tasks WHERE ctid = ANY (ARRAY(
        SELECT v_rows[k] FROM generate_subscripts(v_held, 1) k
        WHERE p_kinds[v_held[k]] IN ('ok', 'expired', 'aborted')));
    INSERT INTO {schema}.results AS r (ns, queue, id, record, expires_ms)
    SELECT p_ns, p_queues[n], p_ids[n], p_records[n], v_real + p_ttl FROM unnest(v_final) n
    ON CONFLICT (ns, queue, id)
    DO UPDATE SET record = excluded.record, expires_ms = excluded.expires_ms;
    FOR i IN SELECT n FROM unnest(v_held) n WHERE p_kinds[n] NOT IN ('ok', 'expired', 'aborted')
    LOOP
        IF p_kinds[i] = 'retry' THEN
            UPDATE {schema}.tasks SET body = p_bodies[i], unaccounted = 0, suspect = false,
                state = CASE WHEN p_delays[i] > 0 THEN 'scheduled' ELSE 'queued' END,
                at_ms = CASE WHEN p_delays[i] > 0 THEN v_now + p_delays[i] ELSE 0 END,
                seq = nextval('{schema}.queue_order')
            WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i];
        ELSE  -- failed | dead
            UPDATE {schema}.tasks SET state = p_kinds[i], at_ms = v_now, unaccounted = 0,
                error = p_records[i], progress = NULL, abort_ms = NULL
            WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i];
        END IF;
    END LOOP;
    INSERT INTO {schema}.stats_log (ns, queue, name, delta)
    SELECT p_ns, q, name, sum(v) FROM (
        SELECT p_queues[n] AS q, p_kinds[n] AS name, 1::bigint AS v FROM unnest(v_held) n
        UNION ALL
        SELECT p_queues[n], p_kinds[n] || '|' || p_tasks[n], 1 FROM unnest(v_held) n
        UNION ALL
        SELECT p_queues[n], 'stale_acks', 1 FROM unnest(v_stale) n
        UNION ALL
        SELECT * FROM unnest(p_stat_queues, p_stat_names, p_stat_values)
    ) c GROUP BY q, name;
    PERFORM pg_notify({schema}.channel(p_ns, 'wake'), q) FROM (
        SELECT DISTINCT p_queues[n] AS q FROM unnest(v_held) n WHERE p_kinds[n] = 'retry') w;
    PERFORM pg_notify({schema}.channel(p_ns, 'done'), q) FROM (
        SELECT DISTINCT p_queues[n] AS q FROM unnest(v_final) n) d;
    RETURN v_stale;
END
$$;

-- one round trip for a worker: settle what it finished, then fetch what comes next
CREATE FUNCTION {schema}.settle_fetch(
    p_ns text, p_now bigint, p_queues text[], p_ids text[], p_fences int[], p_kinds text[],
    p_tasks text[], p_records bytea[], p_delays bigint[], p_bodies bytea[], p_ttl bigint,
    p_stat_queues text[], p_stat_names text[], p_stat_values bigint[],
    p_fetch_queues text[], p_want int, p_alone boolean, p_lease bigint, p_max int,
    OUT o_stale int[], OUT o_queues text[], OUT o_ids text[], OUT o_fences int[],
    OUT o_bodies bytea[], OUT o_next_due bigint, OUT o_now bigint, OUT o_suspects int,
    OUT o_suspect boolean
) LANGUAGE plpgsql AS $$
BEGIN
    o_stale := {schema}.settle(p_ns, p_now, p_queues, p_ids, p_fences, p_kinds, p_tasks,
        p_records, p_delays, p_bodies, p_ttl, p_stat_queues, p_stat_names, p_stat_values);
    SELECT * INTO o_queues, o_ids, o_fences, o_bodies, o_next_due, o_now, o_suspects,
        o_suspect
    FROM {schema}.fetch(p_ns, p_fetch_queues, p_want, p_now, p_alone, p_lease, p_max);
END
$$;

-- renew.lua: extend the leases still held (storing their progress); returns the positions
-- of those lost and of those still held whose task someone asked to abort
CREATE FUNCTION {schema}.renew(
    p_ns text, p_now bigint, p_lease bigint, p_queues text[], p_ids text[], p_fences int[],
    p_progress bytea[], OUT o_lost int[], OUT o_aborting int[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_abort bigint;
    i int;
BEGIN
    o_lost := '{}'; o_aborting := '{}';
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        UPDATE {schema}.tasks SET at_ms = v_now + p_lease,
            progress = coalesce(p_progress[i], progress)
        WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i] AND state = 'running'
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

-- release.lua: hand leases back (fenced). graceful: to the front of the queue, not counted
-- as a delivery; crashed | unexplained: the poison rule, with p_type and p_reason
CREATE FUNCTION {schema}.release(
    p_ns text, p_now bigint, p_type text, p_reason text, p_max int,
    p_queues text[], p_ids text[], p_fences int[]
) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_released int := 0;
    i int;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        PERFORM 1 FROM {schema}.tasks
        WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i] AND state = 'running'
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
            WHERE ns = p_ns AND queue = p_queues[i] AND id = p_ids[i];
            PERFORM {schema}.bump(p_ns, ARRAY[p_queues[i]], ARRAY['released'], ARRAY[1::bigint]);
            PERFORM pg_notify({schema}.channel(p_ns, 'wake'), p_queues[i]);
        END IF;
    END LOOP;
    RETURN v_released;
END
$$;

-- cancel.lua: cancel a task that has not started; with p_abort, ask a running one to stop
CREATE FUNCTION {schema}.cancel(
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
    IF v_state IS NULL OR v_state NOT IN ('queued', 'scheduled') THEN
        RETURN coalesce(v_state, '');
    END IF;
    DELETE FROM {schema}.tasks WHERE ns = p_ns AND queue = p_queue AND id = p_id;
    INSERT INTO {schema}.results AS r (ns, queue, id, record, expires_ms)
    VALUES (p_ns, p_queue, p_id, p_record, {schema}.clock_ms() + p_ttl)
    ON CONFLICT (ns, queue, id)
    DO UPDATE SET record = excluded.record, expires_ms = excluded.expires_ms;
    PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['cancelled'], ARRAY[1::bigint]);
    PERFORM pg_notify({schema}.channel(p_ns, 'done'), p_queue);
    RETURN 'cancelled';
END
$$;

-- dead_retry.lua: back to the front of their queue, those with a message to run
CREATE FUNCTION {schema}.dead_retry(p_ns text, p_queue text, p_ids text[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    WITH back AS (
        UPDATE {schema}.tasks SET state = 'queued', at_ms = 0, error = NULL, suspect = false,
            unaccounted = 0, seq = -nextval('{schema}.queue_order')
        WHERE ns = p_ns AND queue = p_queue AND id = ANY (p_ids)
          AND state IN ('failed', 'dead') AND body IS NOT NULL
        RETURNING id
    ), gone AS (
        DELETE FROM {schema}.results r USING back
        WHERE r.ns = p_ns AND r.queue = p_queue AND r.id = back.id
    )
    SELECT count(*) INTO v_n FROM back;
    IF v_n > 0 THEN
        PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['dead_retried'], ARRAY[v_n::bigint]);
        PERFORM pg_notify({schema}.channel(p_ns, 'wake'), p_queue);
    END IF;
    RETURN v_n;
END
$$;

CREATE FUNCTION {schema}.dead_purge(p_ns text, p_queue text, p_ids text[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    DELETE FROM {schema}.tasks WHERE ns = p_ns AND queue = p_queue AND id = ANY (p_ids)
      AND state IN ('failed', 'dead');
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['dead_purged'], ARRAY[v_n::bigint]);
    END IF;
    RETURN v_n;
END
$$;

-- the custom metrics' write (observability/custom.py): set ``put``, add ``counts`` and
-- ``amounts``, keep each gauge's value unless one set later is held
CREATE FUNCTION {schema}.metrics_write(p_ns text, p_doc jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v jsonb;
BEGIN
    FOR k, v IN SELECT * FROM jsonb_each(p_doc -> 'put') ORDER BY 1 LOOP
        INSERT INTO {schema}.records AS r (ns, space, key, value)
        VALUES (p_ns, 'metric', k, convert_to(v #>> '{}', 'UTF8'))
        ON CONFLICT (ns, space, key) DO UPDATE SET value = excluded.value;
    END LOOP;
    FOR k, v IN SELECT * FROM jsonb_each(p_doc -> 'counts') ORDER BY 1 LOOP
        INSERT INTO {schema}.records AS r (ns, space, key, value)
        VALUES (p_ns, 'metric', k, convert_to((v #>> '{}')::bigint::text, 'UTF8'))
        ON CONFLICT (ns, space, key) DO UPDATE SET value = convert_to(
            (convert_from(r.value, 'UTF8')::numeric::bigint + (v #>> '{}')::bigint)::text,
            'UTF8');
    END LOOP;
    FOR k, v IN SELECT * FROM jsonb_each(p_doc -> 'amounts') ORDER BY 1 LOOP
        INSERT INTO {schema}.records AS r (ns, space, key, value)
        VALUES (p_ns, 'metric', k, convert_to((v #>> '{}')::float8::text, 'UTF8'))
        ON CONFLICT (ns, space, key) DO UPDATE SET value = convert_to(
            (convert_from(r.value, 'UTF8')::float8 + (v #>> '{}')::float8)::text, 'UTF8');
    END LOOP;
    FOR k, v IN SELECT * FROM jsonb_each(p_doc -> 'gauges') ORDER BY 1 LOOP
        INSERT INTO {schema}.records AS r (ns, space, key, value)
        VALUES (p_ns, 'gauge', k, convert_to(v::text, 'UTF8'))
        ON CONFLICT (ns, space, key) DO UPDATE SET value = excluded.value
        WHERE (convert_from(r.value, 'UTF8')::jsonb ->> 0)::bigint <= (v ->> 0)::bigint;
    END LOOP;
END
$$;

-- the schema's version, read by every broker at start (a newer one is refused)
CREATE TABLE {schema}.meta (key text PRIMARY KEY, value text NOT NULL);

-- the tables every task passes through churn: each task's row is inserted, updated and
-- deleted within seconds. Autovacuum's defaults wait for a fifth of a table to be dead;
-- here it runs after a thousand dead rows, so the tables stay their size under a steady
-- load (docs/postgres.md, "A sustained run")
ALTER TABLE {schema}.tasks SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE {schema}.results SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE {schema}.stats_log SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE {schema}.idempotency SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);
