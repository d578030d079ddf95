-- taskq's PostgreSQL schema, version 4: rate limits, concurrency caps and expiry (flow
-- control, docs/flow-control.md), as lua/_lib.lua's gate_admit and gate_end do in Redis.
--
-- A task's gate (``gate``: the JSON the producer computed, without its unique key, which
-- version 2 keeps in ``uniques``; NULL: none) is checked when a fetch would lease the task:
--   r: [[count, period_ms, burst, key], ...]   rate limits (GCRA), per key
--   c: [[n, key], ...]                          concurrency caps, held as long as the lease
--   e: ms                                       not started by then: delivered to be recorded
--                                               as expired, taking no slot and no token
--   bad: why                                    not what a producer writes: dead-lettered
-- A task over a rate limit becomes ``throttled`` (due when the limit allows it, as a
-- scheduled task is); one whose cap key has no free slot becomes ``waiting`` (``wait_key``)
-- until a lease of that key ends, which hands the slot to the first waiter. Neither is
-- leased nor counted as an attempt.
--
-- The slots a key has in use are counted from the leases themselves (running tasks marked
-- ``slots``), not kept in a counter: nothing can make the count drift. Every admission,
-- every end of a lease that held slots and every write of ``rates`` happens under the
-- queue's gate lock (``gate_lock``, a transaction-level advisory lock), so that an admission
-- never misses a lease that is ending, and a task parked as waiting is always seen by the
-- lease end that must wake it. Deadlock-free by construction: a fetch waits for at most one
-- gate lock (and only while it holds none; any other it only tries), and holds nothing
-- another fetch waits for; a settle or a release takes its gate locks after its row locks,
-- in queue-name order, and then waits for nothing else.

ALTER TABLE {schema}.tasks ADD COLUMN gate jsonb;
ALTER TABLE {schema}.tasks ADD COLUMN slots boolean NOT NULL DEFAULT false;
ALTER TABLE {schema}.tasks ADD COLUMN wait_key text;
-- a key's slots in use: its queue's running leases that took slots (few: at most the caps)
CREATE INDEX tasks_slots ON {schema}.tasks (ns, queue) WHERE state = 'running' AND slots;
-- the tasks waiting for a slot of one key, in arrival order
CREATE INDEX tasks_waiting ON {schema}.tasks (ns, queue, wait_key, seq) WHERE state = 'waiting';

-- GCRA's state: per rate key, its "theoretical arrival time" (ms); ``p|<key>``: where the
-- last task parked by that key is due (parked tasks come back in line). A time in the past
-- means the same as none: such rows are pruned as they pass.
CREATE TABLE {schema}.rates (
    ns text NOT NULL,
    queue text NOT NULL,
    key text NOT NULL,
    tat double precision NOT NULL,
    PRIMARY KEY (ns, queue, key)
);
CREATE INDEX rates_past ON {schema}.rates (ns, queue, tat);

-- the gate lock of a queue: waited for (``p_wait``) or only tried
CREATE FUNCTION {schema}.gate_lock(p_ns text, p_queue text, p_wait boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_key bigint := hashtextextended('taskq.gate|' || p_ns || '|' || p_queue, 0);
BEGIN
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(v_key);
        RETURN true;
    END IF;
    RETURN pg_try_advisory_xact_lock(v_key);
END
$$;

-- gate_end: a lease that held slots ended (the caller holds the queue's gate lock): the
-- first task waiting for each of its keys goes back to its queue, in its old place (it
-- waited its turn); a suspect stays a suspect. Returns how many were woken.
CREATE FUNCTION {schema}.gate_end(p_ns text, p_queue text, p_gate jsonb) RETURNS int
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_woken int := 0;
    v_n int;
    v_key text;
BEGIN
    FOR v_key IN SELECT c ->> 1 FROM jsonb_array_elements(p_gate -> 'c') c LOOP
        UPDATE {schema}.tasks SET state = 'queued', wait_key = NULL
        WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM {schema}.tasks
            WHERE ns = p_ns AND queue = p_queue AND state = 'waiting' AND wait_key = v_key
            ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED));
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_woken := v_woken + v_n;
    END LOOP;
    IF v_woken > 0 THEN
        PERFORM pg_notify({schema}.channel(p_ns, 'wake'), p_queue);
    END IF;
    RETURN v_woken;
END
$$;

-- gate_admit for a batch of one queue's locked rows (``p_rows``, leased in ``seq`` order):
-- which may be leased now (``o_rows``; ``o_slotted``: those that took slots) and the
-- earliest due time of those a rate limit delayed. The others are parked (throttled,
-- waiting) or, with a malformed gate, dead-lettered once. Caps are checked before rates: a
-- task that cannot get a slot spends no token. ``p_suspect``: a suspect's re-run spends no
-- token (its crashed run did), it still needs its slots. The caller holds the queue's gate
-- lock when any row has a cap or a rate.
CREATE FUNCTION {schema}.gate_admit(
    p_ns text, p_queue text, p_rows tid[], p_now bigint, p_suspect boolean,
    OUT o_rows tid[], OUT o_slotted tid[], OUT o_due bigint, OUT o_parked int
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_row record;
    v_used jsonb := '{}';         -- cap key -> slots in use (read once a call, then kept)
    v_c jsonb;
    v_r jsonb;
    v_key text;
    v_n bigint;
    v_full text;
    v_allow double precision;
    v_interval double precision;
    v_tat double precision;
    v_step double precision;
    v_burst int;
    v_tats jsonb;
    v_place double precision;
    v_last double precision;
    v_bucket double precision;
    v_due bigint;
    v_rated boolean := false;
BEGIN
    o_rows := '{}'; o_slotted := '{}'; o_parked := 0;
    FOR v_row IN
        SELECT ctid, id, gate FROM {schema}.tasks WHERE ctid = ANY (p_rows) ORDER BY seq
    LOOP
        IF v_row.gate IS NULL OR v_row.gate = '{}' THEN
            o_rows := o_rows || v_row.ctid;
            CONTINUE;
        END IF;
        IF v_row.gate ? 'bad' THEN
            PERFORM {schema}.dead_letter(p_ns, p_queue, v_row.id, p_now, 'BadGate',
                'its flow-control gate is malformed: ' || (v_row.gate ->> 'bad'), 0);
            CONTINUE;
        END IF;
        IF v_row.gate ? 'e' AND p_now >= (v_row.gate ->> 'e')::double precision THEN
            o_rows := o_rows || v_row.ctid;  -- expired: delivered to be recorded so
            CONTINUE;
        END IF;
        -- caps: the first key without a free slot parks the task
        v_full := NULL;
        FOR v_c IN SELECT c FROM jsonb_array_elements(v_row.gate -> 'c') c LOOP
            v_key := v_c ->> 1;
            IF NOT v_used ? v_key THEN
                SELECT count(*) INTO v_n FROM {schema}.tasks t
                WHERE t.ns = p_ns AND t.queue = p_queue AND t.state = 'running' AND t.slots
                  AND t.gate -> 'c' @> jsonb_build_array(jsonb_build_array(v_key));
                v_used := v_used || jsonb_build_object(v_key, v_n);
            END IF;
            IF (v_used ->> v_key)::bigint >= (v_c ->> 0)::bigint THEN
                v_full := v_key;
                EXIT;
            END IF;
        END LOOP;
        IF v_full IS NOT NULL THEN
            UPDATE {schema}.tasks SET state = 'waiting', wait_key = v_full, at_ms = 0
            WHERE ctid = v_row.ctid;
            PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['capped'], ARRAY[1::bigint]);
            o_parked := o_parked + 1;
            CONTINUE;
        END IF;
        -- rates (GCRA): admitted when at most ``burst`` intervals are already owed
        IF v_row.gate ? 'r' AND NOT p_suspect THEN
            v_allow := 0; v_step := 0; v_burst := 1; v_tats := '{}';
            FOR v_r IN SELECT r FROM jsonb_array_elements(v_row.gate -> 'r') r LOOP
                v_interval := (v_r ->> 1)::double precision / (v_r ->> 0)::double precision;
                SELECT tat INTO v_tat FROM {schema}.rates
                WHERE ns = p_ns AND queue = p_queue AND key = v_r ->> 3;
                v_tat := greatest(coalesce(v_tat, 0), p_now);
                v_allow := greatest(v_allow,
                    v_tat + v_interval - v_interval * (v_r ->> 2)::double precision);
                IF v_interval > v_step THEN
                    v_step := v_interval;
                    v_burst := (v_r ->> 2)::int;
                END IF;
                v_tats := v_tats || jsonb_build_object(v_r ->> 3, v_tat + v_interval);
            END LOOP;
            IF v_allow > p_now THEN
                -- in line after the last one parked by the first key, one interval on;
                -- places closer than 10 ms share a due time (as many as the burst allows)
                v_key := 'p|' || (v_row.gate -> 'r' -> 0 ->> 3);
                SELECT tat INTO v_last FROM {schema}.rates
                WHERE ns = p_ns AND queue = p_queue AND key = v_key;
                v_place := greatest(v_allow, coalesce(v_last, 0) + v_step);
                INSERT INTO {schema}.rates AS x (ns, queue, key, tat)
                VALUES (p_ns, p_queue, v_key, v_place)
                ON CONFLICT (ns, queue, key) DO UPDATE SET tat = excluded.tat;
                v_bucket := least(10, v_step * v_burst);
                v_due := ceil(v_place)::bigint;
                IF v_bucket > v_step THEN
                    v_due := (ceil(v_place / v_bucket) * v_bucket)::bigint;
                END IF;
                UPDATE {schema}.tasks SET state = 'throttled', at_ms = v_due
                WHERE ctid = v_row.ctid;
                PERFORM {schema}.bump(p_ns, ARRAY[p_queue], ARRAY['throttled'],
                    ARRAY[1::bigint]);
                o_due := least(coalesce(o_due, v_due), v_due);
                o_parked := o_parked + 1;
                CONTINUE;
            END IF;
            INSERT INTO {schema}.rates AS x (ns, queue, key, tat)
            SELECT p_ns, p_queue, k, v::double precision FROM jsonb_each_text(v_tats) AS e(k, v)
            ON CONFLICT (ns, queue, key) DO UPDATE SET tat = excluded.tat;
            v_rated := true;
        END IF;
        IF v_row.gate ? 'c' THEN
            FOR v_key IN SELECT c ->> 1 FROM jsonb_array_elements(v_row.gate -> 'c') c LOOP
                v_used := v_used || jsonb_build_object(v_key, (v_used ->> v_key)::bigint + 1);
            END LOOP;
            o_slotted := o_slotted || v_row.ctid;
        END IF;
        o_rows := o_rows || v_row.ctid;
    END LOOP;
    IF v_rated THEN
        -- entries in the past mean the same as none: the state expires by itself (a
        -- bounded number a call, by the index on the time)
        DELETE FROM {schema}.rates WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM {schema}.rates
            WHERE ns = p_ns AND queue = p_queue AND tat < p_now - 1 LIMIT 100));
    END IF;
END
$$;

-- the lock a fetch needs before admitting gated rows of ``p_queue`` (``p_held``: the queues
-- whose locks this call holds): waited for when it holds none, else only tried. Returns the
-- queues held after, or NULL when the lock could not be had.
CREATE FUNCTION {schema}.gate_lock_for(p_ns text, p_queue text, p_held text[])
RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    IF p_queue = ANY (p_held) THEN
        RETURN p_held;
    END IF;
    IF {schema}.gate_lock(p_ns, p_queue, cardinality(p_held) = 0) THEN
        RETURN p_held || p_queue;
    END IF;
    RETURN NULL;
END
$$;

-- fetch.lua: version 1's fetch, with the gates: a lapsed lease that held slots frees them,
-- a throttled task comes back when due as a scheduled one does, and the rows about to be
-- leased pass gate_admit when any has a gate
CREATE OR REPLACE FUNCTION {schema}.fetch(
    p_ns text, p_queues text[], p_want int, p_now bigint, p_alone boolean, p_lease bigint,
    p_max int,
    OUT o_queues text[], OUT o_ids text[], OUT o_fences int[], OUT o_bodies bytea[],
    OUT o_next_due bigint, OUT o_now bigint, OUT o_suspects int, OUT o_suspect boolean
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
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
    v_gated boolean;
    v_limited boolean;
    v_slotted tid[] := '{}';
    v_locks text[] := '{}';
    v_next text[];
    v_admit record;
    v_parked boolean := false;
    v_blocked boolean := false;
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
            SELECT id, slots, gate FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state = 'running' AND at_ms <= v_now
            ORDER BY at_ms, id LIMIT 100 FOR UPDATE SKIP LOCKED
        LOOP
            IF v_row.slots THEN
                -- its slots free themselves with the lease, under the queue's gate lock;
                -- another call holding it: a later fetch takes this lease back
                v_next := {schema}.gate_lock_for(p_ns, v_queue, v_locks);
                CONTINUE WHEN v_next IS NULL;
                v_locks := v_next;
            END IF;
            v_expired := v_expired + 1;
            PERFORM {schema}.no_outcome(p_ns, v_queue, v_row.id, v_now, 'PoisonTask',
                'its worker died or froze each time', p_max);
            IF v_row.slots THEN
                PERFORM {schema}.gate_end(p_ns, v_queue, v_row.gate);
            END IF;
        END LOOP;
        IF v_expired > 0 THEN
            PERFORM {schema}.bump(p_ns, ARRAY[v_queue], ARRAY['lease_expired'],
                ARRAY[v_expired::bigint]);
        END IF;
        -- due: scheduled tasks, and those a rate limit held back
        FOR v_row IN
            SELECT ctid FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state IN ('scheduled', 'throttled')
              AND at_ms <= v_now
            ORDER BY at_ms, id LIMIT 1000 FOR UPDATE SKIP LOCKED
        LOOP
            UPDATE {schema}.tasks SET state = 'queued', at_ms = 0,
                seq = nextval('{schema}.queue_order')
            WHERE ctid = v_row.ctid;
        END LOOP;
        SELECT min(at_ms) INTO v_first FROM {schema}.tasks
        WHERE ns = p_ns AND queue = v_queue AND state IN ('scheduled', 'throttled');
        IF v_first IS NOT NULL AND (o_next_due IS NULL OR v_first < o_next_due) THEN
            o_next_due := v_first;
        END IF;
    END LOOP;
    -- suspects: one, alone, to a caller that holds nothing
    FOREACH v_queue IN ARRAY p_queues LOOP
        WHILE p_alone AND p_want > 0 AND NOT o_suspect AND NOT v_blocked LOOP
            SELECT ctid, id, body, gate INTO v_row FROM {schema}.tasks
            WHERE ns = p_ns AND queue = v_queue AND state = 'queued' AND suspect
            ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN NOT FOUND;
            IF v_row.body IS NULL THEN
                PERFORM {schema}.bump(p_ns, ARRAY[v_queue], ARRAY['orphans'], ARRAY[1::bigint]);
                PERFORM {schema}.dead_letter(p_ns, v_queue, v_row.id, v_now, 'MissingMessage',
                    'message body missing', 0);
                CONTINUE;
            END IF;
            v_slotted := '{}';
            IF v_row.gate IS NOT NULL THEN
                IF v_row.gate ?| ARRAY['c', 'r'] THEN
                    v_next := {schema}.gate_lock_for(p_ns, v_queue, v_locks);
                    IF v_next IS NULL THEN
                        v_blocked := true;  -- the row stays as it is, for a later fetch
                        EXIT;
                    END IF;
                    v_locks := v_next;
                END IF;
                SELECT * INTO v_admit
                FROM {schema}.gate_admit(p_ns, v_queue, ARRAY[v_row.ctid], v_now, true);
                -- waits for a slot, still a suspect; or dead-lettered (its gate)
                CONTINUE WHEN cardinality(v_admit.o_rows) = 0;
                v_slotted := v_admit.o_slotted;
            END IF;
            UPDATE {schema}.tasks SET state = 'running', suspect = false, at_ms = v_deadline,
                fence = fence + 1, unaccounted = unaccounted + 1,
                slots = cardinality(v_slotted) > 0
            WHERE ctid = v_row.ctid
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
        EXIT WHEN v_blocked;
        WHILE v_got < p_want AND v_examine > 0 LOOP
            -- the rows first (locked), then the update by their physical address: a join,
            -- or ``id = ANY``, let the planner scan the whole queue when it misjudged it
            -- (a fresh backlog, stale statistics, a generic plan)
            SELECT coalesce(array_agg(ctid ORDER BY seq), '{}'),
                coalesce(bool_or(gate IS NOT NULL), false),
                coalesce(bool_or(gate ?| ARRAY['c', 'r']), false)
            INTO v_rows, v_gated, v_limited
            FROM (
                SELECT ctid, seq, gate FROM {schema}.tasks
                WHERE ns = p_ns AND queue = v_queue AND state = 'queued' AND NOT suspect
                ORDER BY seq LIMIT least(p_want - v_got, v_examine)
                FOR UPDATE SKIP LOCKED
            ) c;
            EXIT WHEN cardinality(v_rows) = 0;
            v_examine := v_examine - cardinality(v_rows);
            v_slotted := '{}';
            IF v_gated THEN
                IF v_limited THEN
                    v_next := {schema}.gate_lock_for(p_ns, v_queue, v_locks);
                    IF v_next IS NULL THEN
                        -- another call admits this queue's tasks now: it leaves the rows
                        -- as they were, and a sleeper is woken for them after it
                        v_blocked := true;
                        PERFORM pg_notify({schema}.channel(p_ns, 'wake'), v_queue);
                        EXIT;
                    END IF;
                    v_locks := v_next;
                END IF;
                SELECT * INTO v_admit
                FROM {schema}.gate_admit(p_ns, v_queue, v_rows, v_now, false);
                v_rows := v_admit.o_rows;
                v_slotted := v_admit.o_slotted;
                IF v_admit.o_due IS NOT NULL
                   AND (o_next_due IS NULL OR v_admit.o_due < o_next_due) THEN
                    o_next_due := v_admit.o_due;
                END IF;
                v_parked := v_parked OR v_admit.o_parked > 0;
                CONTINUE WHEN cardinality(v_rows) = 0;
            END IF;
            WITH leased AS (
                UPDATE {schema}.tasks t SET state = 'running', at_ms = v_deadline,
                    fence = t.fence + 1, unaccounted = t.unaccounted + 1,
                    slots = t.ctid = ANY (v_slotted)
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
        IF v_got >= p_want OR (v_parked AND v_examine <= 0) THEN
            -- more may wait: wake another sleeper, as fetch.lua passes the token on (also
            -- when parking tasks used up this call's look at the queue)
            PERFORM pg_notify({schema}.channel(p_ns, 'wake'), v_queue);
            EXIT;
        END IF;
    END LOOP;
END
$$;

-- the ends of leases that held slots (``p_queues``/``p_gates`` pairs): their queues' gate
-- locks taken in name order (after the caller's row locks), then each wakes its waiters
CREATE FUNCTION {schema}.gate_ends(p_ns text, p_queues text[], p_gates jsonb[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.gate_lock(p_ns, q, true)
    FROM (SELECT DISTINCT q FROM unnest(p_queues) q ORDER BY q) d;
    PERFORM {schema}.gate_end(p_ns, q, g) FROM unnest(p_queues, p_gates) AS e(q, g);
END
$$;

-- version 3's settle, with the leases that held slots handing them on (gate_ends)
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
    v_slot_queues text[];
    v_slot_gates jsonb[];
BEGIN
    -- the outcomes whose lease is still held, each task once (an outcome listed twice
    -- settles once): locked by primary key, one lookup each, whatever the statistics say
    SELECT coalesce(array_agg(n ORDER BY n), '{}'), coalesce(array_agg(row_ ORDER BY n), '{}'),
        coalesce(array_agg(q) FILTER (WHERE slots), '{}'),
        coalesce(array_agg(gate) FILTER (WHERE slots), '{}')
    INTO v_held, v_rows, v_slot_queues, v_slot_gates
    FROM (
        SELECT DISTINCT ON (o.q, o.id) o.n, o.q, t.ctid AS row_, t.slots, t.gate
        FROM unnest(p_queues, p_ids, p_fences) WITH ORDINALITY AS o(q, id, f, n)
        CROSS JOIN LATERAL (
            SELECT ctid, slots, gate FROM {schema}.tasks t
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
    IF cardinality(v_slot_queues) > 0 THEN
        PERFORM {schema}.gate_ends(p_ns, v_slot_queues, v_slot_gates);
    END IF;
    RETURN v_stale;
END
$$;

-- version 3's release, with the leases that held slots handing them on (gate_ends)
CREATE OR REPLACE FUNCTION {schema}.release(
    p_ns text, p_now bigint, p_type text, p_reason text, p_max int,
    p_queues text[], p_ids text[], p_fences int[]
) RETURNS int LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_now bigint := CASE WHEN p_now > 0 THEN p_now ELSE {schema}.clock_ms() END;
    v_released int := 0;
    v_row record;
    v_slot_queues text[] := '{}';
    v_slot_gates jsonb[] := '{}';
    i int;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        SELECT slots, gate INTO v_row FROM {schema}.tasks
        WHERE id = p_ids[i] AND queue = p_queues[i] AND ns = p_ns AND state || '' = 'running'
          AND fence = p_fences[i]
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        v_released := v_released + 1;
        IF v_row.slots THEN
            v_slot_queues := v_slot_queues || p_queues[i];
            v_slot_gates := v_slot_gates || v_row.gate;
        END IF;
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
    IF cardinality(v_slot_queues) > 0 THEN
        PERFORM {schema}.gate_ends(p_ns, v_slot_queues, v_slot_gates);
    END IF;
    RETURN v_released;
END
$$;

-- version 1's cancel: a task held back by its gate (throttled, waiting) has not started
-- either, and is cancelled the same way (a waiting one simply leaves the wait)
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
    RETURN 'cancelled';
END
$$;

-- version 2's unique_claim: a throttled or waiting holder has not started either
CREATE OR REPLACE FUNCTION {schema}.unique_claim(
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
              AND t.state IN ('queued', 'scheduled', 'throttled', 'waiting', 'running')
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

-- version 2's enqueue, with each task's gate (``p_gates``, NULL: none)
DROP FUNCTION {schema}.enqueue(text, bigint, text[], text[], text[], bytea[], bigint[],
    bigint[], text[], bigint, text[], "char"[], bigint[]);
CREATE FUNCTION {schema}.enqueue(
    p_ns text, p_now bigint, p_queues text[], p_ids text[], p_tasks text[], p_bodies bytea[],
    p_due bigint[], p_delay bigint[], p_keys text[], p_idem_ttl bigint,
    p_ukeys text[], p_umodes "char"[], p_uwindows bigint[], p_gates jsonb[]
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
            INSERT INTO {schema}.tasks AS t (ns, queue, id, task, body, state, seq, at_ms,
                gate)
            SELECT p_ns, q, tid, task, body,
                CASE WHEN due > v_now THEN 'scheduled' ELSE 'queued' END,
                nextval('{schema}.queue_order'),
                CASE WHEN due > v_now THEN due ELSE 0 END, gate
            FROM (
                SELECT u.q, u.tid, u.task, u.body, u.n, u.gate,
                    CASE WHEN u.delay > 0 THEN v_now + u.delay ELSE u.due END AS due
                FROM unnest(p_queues, p_ids, p_tasks, p_bodies, p_due, p_delay, p_gates)
                    WITH ORDINALITY AS u(q, tid, task, body, due, delay, gate, n)
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
        INSERT INTO {schema}.tasks (ns, queue, id, task, body, state, seq, at_ms, gate)
        VALUES (p_ns, p_queues[i], p_ids[i], p_tasks[i], p_bodies[i],
                CASE WHEN v_due > v_now THEN 'scheduled' ELSE 'queued' END,
                nextval('{schema}.queue_order'),
                CASE WHEN v_due > v_now THEN v_due ELSE 0 END, p_gates[i])
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
