using System.Collections.Concurrent;
using System.Threading.Channels;
using CcRelay.Core;
using CcRelay.Host.Clients;
using CcRelay.Host.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace CcRelay.Host.Shared;

/// <summary>
/// What several relays share through PostgreSQL (<c>state.postgres</c>, docs/scale-out.md), kept off the request path:
/// <code>
///   request path ──Admitted/Settled: a lock and a map update──► pending spend (SharedSpend)
///   RuntimeCell effect ──Publish: TryWrite, never blocks──► bounded event queue
///   [this loop, one LISTEN connection + a small pool]
///     (1) wait for a NOTIFY or the flush interval          ccrelay_events / ccrelay_spend ──► apply to RuntimeCell / ClientGate
///     (2) publish queued events: row per kind + pg_notify   ──► ccrelay_circuits, _providers, _keys, _revoked_client_keys
///     (3) flush pending spend (one row, unique flush id) + heartbeat, pg_notify ccrelay_spend
///     (4) on a NOTIFY, read the others' flushes after the last seq; every 5 s, read anyway and release the
///         reservations of relays gone silent
///   lost connection ──► Degraded (health, metric), backoff, reconnect, re-read every table, catch up by seq
/// </code>
/// The decisions (what is published, how it applies, the merge, the backoff) are Core's (<see cref="SharedEvents"/>,
/// <see cref="SharedSpend"/>, <see cref="SharedHealth"/>); this class reads, calls Core, writes.
/// NOTE: nothing here is awaited by a request. A slow or lost database delays what the other relays learn, never an
/// answer; while it is gone the relay enforces from what it knows (its own state and the last merged).
/// </summary>
public sealed partial class SharedStateService : IHostedService, IAsyncDisposable
{
    /// <summary>The most events queued while the database cannot take them.</summary>
    private const int EventCapacity = 10_000;

    /// <summary>The advisory lock that orders spend flushes ("ccspend" in ASCII).</summary>
    private const long SpendLockKey = 0x6363_7370_656E_64;

    private readonly RelayState _state;
    private readonly RuntimeCell _runtime;
    private readonly ClientGate _gate;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly NpgsqlDataSource _pool;
    private readonly string _listenConnection;
    private readonly TimeSpan _flushInterval;
    private readonly Channel<SharedEvent> _events = Channel.CreateBounded<SharedEvent>(new BoundedChannelOptions(EventCapacity)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait, // TryWrite fails instead: the drop is counted
    });
    private readonly ConcurrentQueue<string> _notifications = new();

    /// <summary>Events taken from <see cref="_events"/> whose transaction has not committed yet (the loop's alone).</summary>
    private readonly List<SharedEvent> _publishing = new(500);
    private readonly Lock _pendingLock = new();
    private readonly Lock _stepsLock = new();

    /// <summary>Steps recorded but not folded when a request finds this many (the loop folds them at every flush; this bounds them while it cannot).</summary>
    private const int FoldAt = 4096;

    /// <summary>The admissions and settlements recorded on the request path since the last fold (under <see cref="_stepsLock"/>).</summary>
    private List<SpendStep> _steps = new(256);
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _firstSync = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SpendPending _pending = SharedSpend.empty;
    private SpendFlush? _unconfirmed;
    private SpendView _view = SharedSpend.emptyView;
    private long _lastSeq;
    private RevokedClientKeys _revoked = RevokedClientKeys.Empty;
    private SharedLink _link = SharedLink.Connecting;
    private Task? _loop;
    private long _published;
    private long _merged;
    private long _dropped;
    private int _queueFullReported;
    private int _disposed;
    private int _keysChanged = 1;
    private readonly IClientKeyStore? _keyStore;
    private long _lastHeartbeat;

    /// <summary>A service for <paramref name="connectionString"/> as relay <paramref name="identity"/> (a new id when null); nothing is opened until <see cref="StartAsync"/>.</summary>
    public SharedStateService(
        string connectionString,
        TimeSpan flushInterval,
        RelayState state,
        RuntimeCell runtime,
        ClientGate gate,
        TimeProvider time,
        ILogger logger,
        IClientKeyStore? keyStore = null,
        RelayIdentity? identity = null)
    {
        _state = state;
        _runtime = runtime;
        _gate = gate;
        _time = time;
        _logger = logger;
        _flushInterval = flushInterval;
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // a lost database must be noticed in seconds: short connect and command timeouts unless the operator set others
        if (builder.Timeout == 15)
        {
            builder.Timeout = 3;
        }

        if (builder.CommandTimeout == 30)
        {
            builder.CommandTimeout = 5;
        }

        builder.KeepAlive = builder.KeepAlive == 0 ? 5 : builder.KeepAlive;
        builder.ApplicationName ??= "cc-relay";
        _listenConnection = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Pooling = false }.ConnectionString;
        if (builder.MaxPoolSize == 100)
        {
            builder.MaxPoolSize = 4;
        }

        _pool = NpgsqlDataSource.Create(builder);
        // the process's one id (the ledger writes the same: RelayIdentity)
        RelayId = (identity ?? RelayIdentity.New()).Id;
        gate.OnAdmitted = Admitted;
        gate.OnSettled = Settled;
        runtime.OnEffect = Publish;
        _keyStore = keyStore;
        if (keyStore is not null)
        {
            // a change appended here (cc-relay clients …) is written to the shared store at the next turn of the loop
            keyStore.Changed += (_, _) => Volatile.Write(ref _keysChanged, 1);
        }
    }

    /// <summary>This relay's id in the store: host, process and a random part (a restarted relay is a new one).</summary>
    public string RelayId { get; }

    /// <summary>The link now.</summary>
    public SharedLink Link => Volatile.Read(ref _link);

    /// <summary>Events and flushes published, flushes merged, events dropped (queue full).</summary>
    public (long Published, long Merged, long Dropped) Counts =>
        (Interlocked.Read(ref _published), Interlocked.Read(ref _merged), Interlocked.Read(ref _dropped));

    /// <summary>The auth verdict with the client keys revoked through the store refused (from memory).</summary>
    public ClientVerdict Check(ClientVerdict verdict) => Volatile.Read(ref _revoked).Check(verdict);

    /// <summary>Starts the loop and waits (at most a few seconds) for the first sync, so budgets and state are shared from the first request when the database is there.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(RunAsync, CancellationToken.None);
        try
        {
            await _firstSync.Task.WaitAsync(TimeSpan.FromSeconds(5), _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            // the database is slow or gone: the relay starts on its local state; the loop keeps trying
        }
    }

    /// <summary>Stops the loop after one last flush (bounded in time).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            try
            {
                await _loop.WaitAsync(TimeSpan.FromSeconds(5), _time, cancellationToken);
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
                // what is still pending is lost, as a crash would lose it (at most one flush interval)
            }
        }
    }

    /// <summary>Stops the loop and closes the pool; a second call (the container tracks the service twice: as itself and as a hosted service) does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stop.CancelAsync();
        await _pool.DisposeAsync();
        _stop.Dispose();
    }

    /// <summary>Queues a local effect's event, if it is one that spreads (never blocks).</summary>
    public void Publish(RelayEffect effect)
    {
        var shared = SharedEvents.ofEffect(_runtime.Now, _time.GetUtcNow(), effect);
        if (shared is not null)
        {
            Publish(shared.Value);
        }
    }

    /// <summary>Queues an event (never blocks; a full queue drops it and counts the drop).</summary>
    public void Publish(SharedEvent shared)
    {
        if (!_events.Writer.TryWrite(shared))
        {
            Interlocked.Increment(ref _dropped);
            if (Interlocked.Exchange(ref _queueFullReported, 1) == 0)
            {
                SharedStateLog.QueueFull(_logger, EventCapacity);
            }
        }
    }

    // NOTE: the request path only appends a step (a struct, under a lock held for the append): the map updates of
    // SharedSpend, which cost a request about 22,000 instructions, half of them under the client's cell lock, are
    // folded in by the loop at each flush (bench/shared-state-callgrind.sh, docs/scale-out.md)
    private void Admitted(ClientConfig client, ClientTicket ticket) => Record(SpendStep.Admission(client.Name, ticket));

    private void Settled(ClientConfig client, ClientTicket ticket, decimal? costUsd) =>
        Record(SpendStep.Settlement(client.Name, ticket, costUsd, _time.GetUtcNow()));

    private void Record(SpendStep step)
    {
        List<SpendStep>? full = null;
        lock (_stepsLock)
        {
            _steps.Add(step);
            if (_steps.Count >= FoldAt)
            {
                full = _steps;
                _steps = new List<SpendStep>(256);
            }
        }

        if (full is not null)
        {
            // the loop is not folding (the database is away, or more than FoldAt requests came within one flush
            // interval): this request folds them, so they stay bounded
            Fold(full);
        }
    }

    /// <summary>Folds steps into the pending spend (the steps are additions: the order of folds does not matter).</summary>
    private void Fold(List<SpendStep> steps)
    {
        lock (_pendingLock)
        {
            _pending = _pending.Fold(steps);
        }
    }

    /// <summary>Folds what the request path recorded since the last fold.</summary>
    private void FoldRecorded()
    {
        List<SpendStep> steps;
        lock (_stepsLock)
        {
            if (_steps.Count == 0)
            {
                return;
            }

            steps = _steps;
            _steps = new List<SpendStep>(Math.Max(256, steps.Count));
        }

        Fold(steps);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The loop
    // ---------------------------------------------------------------------------------------------------------------

    private async Task RunAsync()
    {
        var stopping = _stop.Token;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await using var listen = new NpgsqlConnection(_listenConnection);
                await listen.OpenAsync(stopping);
                var found = await SharedSchema.MigrateAsync(listen, stopping);
                listen.Notification += (_, e) => _notifications.Enqueue(e.Channel + "\n" + e.Payload);
                await using (var command = new NpgsqlCommand("LISTEN ccrelay_events; LISTEN ccrelay_spend; LISTEN ccrelay_client_keys", listen))
                {
                    await command.ExecuteNonQueryAsync(stopping);
                }

                // what was queued or pending while the store was away goes first (the heartbeat with it registers this
                // relay's read position before it reads: compaction never folds past a registered position), then
                // everything is read again
                await PublishAsync(stopping);
                await FlushAsync(stopping);
                await ResyncAsync(stopping);
                Volatile.Write(ref _keysChanged, 1);
                await SyncKeysAsync(stopping);
                await CheckBehindAsync(stopping);
                await ReadSpendAsync(stopping);
                await ReleaseGoneAsync(stopping);
                await CheckAgreementAsync(stopping);
                var connected = LinkStep.Connected(Link);
                Volatile.Write(ref _link, connected.Link);
                if (connected.Report is LinkReport.Recovered recovered)
                {
                    SharedStateLog.Recovered(_logger, (long)(_time.GetUtcNow() - recovered.Since).TotalSeconds);
                }
                else if (connected.Report.IsConnected)
                {
                    SharedStateLog.Connected(_logger, RelayId, SharedSchema.Version, found, (int)_flushInterval.TotalMilliseconds);
                }

                _firstSync.TrySetResult();
                var lastCheck = _time.GetTimestamp();
                var lastCompaction = _time.GetTimestamp();
                _lastHeartbeat = _time.GetTimestamp();
                var lastFlush = _time.GetTimestamp();
                while (!stopping.IsCancellationRequested)
                {
                    // :: Step 1: wait for a NOTIFY or the next flush, then apply what arrived
                    var wait = LoopClock.WaitBeforeFlush(_flushInterval, _time.GetElapsedTime(lastFlush));
                    if (wait > TimeSpan.Zero)
                    {
                        await listen.WaitAsync(wait, stopping);
                    }

                    var spendNotified = ApplyNotifications();

                    // :: Step 2-3: publish events and client-key changes at once; flush spend (with the heartbeat) on
                    // schedule only (SharedLoop.turn says why)
                    await SyncKeysAsync(stopping);
                    await PublishAsync(stopping);
                    var turn = SharedLoop.turn(
                        _flushInterval, spendNotified, _time.GetElapsedTime(lastFlush), _time.GetElapsedTime(lastCheck), _time.GetElapsedTime(lastCompaction));
                    if (turn.FlushDue)
                    {
                        lastFlush = _time.GetTimestamp();
                        await FlushAsync(stopping);
                    }

                    // :: Step 4: read the others' flushes; now and then, release the relays gone silent
                    if (turn.ReadSpend)
                    {
                        await ReadSpendAsync(stopping);
                    }

                    // NOTE: the NOTIFY is what spreads spend; this read is the fallback for one lost with a connection
                    if (turn.Check)
                    {
                        lastCheck = _time.GetTimestamp();
                        await ReadSpendAsync(stopping);
                        await ReleaseGoneAsync(stopping);
                        await CheckAgreementAsync(stopping);
                    }

                    // :: Step 5: fold old spend rows, if no other relay is at it (SharedSpendCompactor.cs)
                    if (turn.Compact)
                    {
                        lastCompaction = _time.GetTimestamp();
                        await CompactAsync(stopping);
                    }
                }
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                // stopping: whatever the last attempt ran into (a connection refused while the relay stops) ends the loop
                break;
            }
            catch (Exception e) when (!stopping.IsCancellationRequested)
            {
                // NOTE: every failure, not just the database's: a loop that died silently would leave the relay
                // unshared while it says "ok"
                if (e is not (NpgsqlException or IOException or TimeoutException or System.Net.Sockets.SocketException))
                {
                    SharedStateLog.Unexpected(_logger, e);
                }

                var failed = LinkStep.Failed(_time.GetUtcNow(), Problem(e), Random.Shared.NextDouble(), Link);
                Volatile.Write(ref _link, failed.Link);
                if (failed.Report.IsLost)
                {
                    SharedStateLog.Lost(_logger, Problem(e));
                }

                _firstSync.TrySetResult();
                try
                {
                    await Task.Delay(failed.Backoff, _time, stopping);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        // one last flush on the way out, when the store is there (bounded by the command timeout)
        try
        {
            using var last = new CancellationTokenSource(TimeSpan.FromSeconds(3), _time);
            await PublishAsync(last.Token);
            await FlushAsync(last.Token, leaving: true);
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            // the store is gone: as a crash would, the relay loses at most one flush interval of spend
        }
    }

    /// <summary>What went wrong, without the connection string (Npgsql's messages never carry the password).</summary>
    private static string Problem(Exception e) => e switch
    {
        PostgresException pg => $"PostgreSQL {pg.SqlState}: {pg.MessageText}",
        NpgsqlException { InnerException: { } inner } => inner.Message,
        _ => e.Message,
    };

    /// <summary>Applies the notifications received; true when a spend flush was announced.</summary>
    private bool ApplyNotifications()
    {
        var spend = false;
        while (_notifications.TryDequeue(out var message))
        {
            var split = message.IndexOf('\n', StringComparison.Ordinal);
            var channel = message[..split];
            if (channel == "ccrelay_client_keys")
            {
                Volatile.Write(ref _keysChanged, 1);
                continue;
            }

            if (channel == "ccrelay_spend")
            {
                spend |= message[(split + 1)..] != RelayId;
                continue;
            }

            var decoded = SharedEvents.decode(message[(split + 1)..]);
            if (decoded.IsError)
            {
                SharedStateLog.Ignored(_logger, decoded.ErrorValue);
                continue;
            }

            var (relay, shared) = decoded.ResultValue;
            if (relay != RelayId)
            {
                Apply(shared);
                if (shared is not SharedEvent.ConversationPinned)
                {
                    SharedStateLog.Applied(_logger, Describe(shared), relay);
                }
            }
        }

        return spend;
    }

    private static string Describe(SharedEvent shared) => shared switch
    {
        SharedEvent.CircuitOpened o => $"circuit of {o.Provider} opened until {o.Until:O}",
        SharedEvent.ProviderSwitched s => $"provider {s.Provider} {(s.Disabled ? "disabled" : "enabled")}",
        SharedEvent.KeyCooledDown k => $"key {k.Provider}/{k.KeyId} cooling down until {k.Until:O}",
        SharedEvent.KeyLimitsLearned l => $"limits of key {l.Provider}/{l.KeyId} learned",
        SharedEvent.ClientKeyRevoked r => $"client key {r.KeyId} revoked",
        SharedEvent.ConversationPinned p => $"a conversation pinned to {p.Family}",
        _ => "event",
    };

    /// <summary>Applies another relay's event (or a row read again): to the runtime, or to the revoked client keys.</summary>
    private void Apply(SharedEvent shared)
    {
        if (shared is SharedEvent.ClientKeyRevoked revoked)
        {
            RevokedClientKeys before, after;
            do
            {
                before = Volatile.Read(ref _revoked);
                after = before.Add(revoked.KeyId);
            }
            while (!ReferenceEquals(Interlocked.CompareExchange(ref _revoked, after, before), before));
            return;
        }

        var wall = _time.GetUtcNow();
        _runtime.Update((shared, wall), static (runtime, now, arg) => SharedEvents.apply(now, arg.wall, arg.shared, runtime));
    }

    /// <summary>
    /// Writes queued events: each one's row (what a relay connecting later reads) and its NOTIFY, one transaction each
    /// batch of at most 500. A batch stays in <see cref="_publishing"/> until its commit succeeds: a failed one (the
    /// database lost between the statements and the commit) is written again after the reconnect, never dropped
    /// (it was dropped before: taken from the queue first, an opened circuit could reach no other relay). Writing one
    /// twice is harmless: the rows are upserts, and applying an event twice changes nothing the first did not.
    /// </summary>
    private async Task PublishAsync(CancellationToken cancellationToken)
    {
        while (_publishing.Count < 500 && _events.Reader.TryRead(out var queued))
        {
            _publishing.Add(queued);
        }

        if (_publishing.Count == 0)
        {
            return;
        }

        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var shared in _publishing)
        {
            await using (var command = RowOf(shared, connection, transaction))
            {
                if (command.CommandText.Length > 0)
                {
                    await command.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            await using var notify = new NpgsqlCommand("SELECT pg_notify('ccrelay_events', @payload)", connection, transaction);
            notify.Parameters.AddWithValue("payload", SharedEvents.encode(RelayId, shared));
            await notify.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        Interlocked.Add(ref _published, _publishing.Count);
        _publishing.Clear();
        Volatile.Write(ref _queueFullReported, 0);
    }

    private NpgsqlCommand RowOf(SharedEvent shared, NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        command.Parameters.AddWithValue("relay", RelayId);
        switch (shared)
        {
            case SharedEvent.CircuitOpened o:
                command.CommandText = """
                    INSERT INTO ccrelay_circuits (provider, open_until, relay) VALUES (@provider, @until, @relay)
                    ON CONFLICT (provider) DO UPDATE SET open_until = greatest(ccrelay_circuits.open_until, excluded.open_until), relay = excluded.relay
                    """;
                command.Parameters.AddWithValue("provider", o.Provider);
                command.Parameters.AddWithValue("until", o.Until);
                break;
            case SharedEvent.ProviderSwitched s:
                command.CommandText = """
                    INSERT INTO ccrelay_providers (provider, disabled, relay, at) VALUES (@provider, @disabled, @relay, now())
                    ON CONFLICT (provider) DO UPDATE SET disabled = excluded.disabled, relay = excluded.relay, at = now()
                    """;
                command.Parameters.AddWithValue("provider", s.Provider);
                command.Parameters.AddWithValue("disabled", s.Disabled);
                break;
            case SharedEvent.KeyCooledDown k:
                command.CommandText = """
                    INSERT INTO ccrelay_keys (provider, key_id, cooldown_until) VALUES (@provider, @key, @until)
                    ON CONFLICT (provider, key_id) DO UPDATE SET cooldown_until = greatest(ccrelay_keys.cooldown_until, excluded.cooldown_until)
                    """;
                command.Parameters.AddWithValue("provider", k.Provider);
                command.Parameters.AddWithValue("key", k.KeyId);
                command.Parameters.AddWithValue("until", k.Until);
                break;
            case SharedEvent.KeyLimitsLearned l:
                command.CommandText = """
                    INSERT INTO ccrelay_keys (provider, key_id, rpm, itpm, otpm) VALUES (@provider, @key, @rpm, @itpm, @otpm)
                    ON CONFLICT (provider, key_id) DO UPDATE SET rpm = excluded.rpm, itpm = excluded.itpm, otpm = excluded.otpm
                    """;
                command.Parameters.AddWithValue("provider", l.Provider);
                command.Parameters.AddWithValue("key", l.KeyId);
                command.Parameters.AddWithValue("rpm", l.Limits.Rpm);
                command.Parameters.AddWithValue("itpm", l.Limits.Itpm);
                command.Parameters.AddWithValue("otpm", l.Limits.Otpm);
                break;
            case SharedEvent.ClientKeyRevoked r:
                command.CommandText = "INSERT INTO ccrelay_revoked_client_keys (key_id) VALUES (@key) ON CONFLICT (key_id) DO NOTHING";
                command.Parameters.AddWithValue("key", r.KeyId);
                break;
            case SharedEvent.ConversationPinned p:
                // the newest pin per conversation, for a relay that joins later (SharedPins.restore)
                command.CommandText = """
                    INSERT INTO ccrelay_pins (conversation_key, family, pinned_at) VALUES (@key, @family, now())
                    ON CONFLICT (conversation_key) DO UPDATE SET family = excluded.family, pinned_at = excluded.pinned_at
                    """;
                command.Parameters.AddWithValue("key", unchecked((long)p.ConversationKey));
                command.Parameters.AddWithValue("family", p.Family);
                break;
        }

        return command;
    }

    /// <summary>
    /// Writes the pending spend as one flush (its id kept until the write is known to have committed: a retry of a flush
    /// that did commit inserts nothing), with this relay's heartbeat and read position, and announces it
    /// (<see cref="SharedLoop.flushAction"/> decides which). <paramref name="leaving"/>: the last one, which withdraws
    /// the read position (a relay that has stopped holds no compaction back).
    /// </summary>
    private async Task FlushAsync(CancellationToken cancellationToken, bool leaving = false)
    {
        FlushAction action;
        if (_unconfirmed is null)
        {
            FoldRecorded();
        }

        lock (_pendingLock)
        {
            // NOTE: a leaving relay always writes its heartbeat (to withdraw its read position)
            action = SharedLoop.flushAction(_unconfirmed is not null, SharedSpend.hasPending(_pending), leaving ? TimeSpan.MaxValue : _time.GetElapsedTime(_lastHeartbeat));
            if (action.IsTakeNew)
            {
                (_unconfirmed, _pending) = SharedSpend.take(Guid.NewGuid(), RelayId, _pending).ToValueTuple();
            }
        }

        // NOTE: nothing to write and the heartbeat not due: no round trip at all (an idle relay costs the database a
        // heartbeat a second, a busy one a flush per interval)
        if (action.IsSkip)
        {
            return;
        }

        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);
        // NOTE: the read position is what this relay has read and merged: published at most as far as it is, so a
        // compaction run never folds a row this relay may still read (SharedCompaction.cutoff)
        var heartbeat = new NpgsqlBatchCommand(
            "INSERT INTO ccrelay_relays (relay, seen_at, read_seq) VALUES (@relay, now(), @read) ON CONFLICT (relay) DO UPDATE SET seen_at = now(), read_seq = excluded.read_seq");
        heartbeat.Parameters.AddWithValue("relay", RelayId);
        heartbeat.Parameters.AddWithValue("read", leaving ? DBNull.Value : (object)_lastSeq);
        batch.BatchCommands.Add(heartbeat);
        var flush = _unconfirmed;
        if (flush is not null)
        {
            // NOTE: flushes are serialised by a transaction-level advisory lock, so their seqs are assigned in commit
            // order: a reader that has read seq N never later finds a flush below N committed (a bigserial alone
            // would let a slower transaction commit a lower seq after a higher one was read, and it would be missed)
            var order = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(@lock)");
            order.Parameters.AddWithValue("lock", SpendLockKey);
            batch.BatchCommands.Add(order);
            var insert = new NpgsqlBatchCommand("INSERT INTO ccrelay_spend (flush_id, relay, body) VALUES (@id, @relay, @body::jsonb) ON CONFLICT (flush_id) DO NOTHING");
            insert.Parameters.AddWithValue("id", flush.FlushId);
            insert.Parameters.AddWithValue("relay", RelayId);
            insert.Parameters.AddWithValue("body", SpendFlushJson.write(flush));
            batch.BatchCommands.Add(insert);
            var notify = new NpgsqlBatchCommand("SELECT pg_notify('ccrelay_spend', @relay)");
            notify.Parameters.AddWithValue("relay", RelayId);
            batch.BatchCommands.Add(notify);
        }

        // one round trip, one implicit transaction
        await batch.ExecuteNonQueryAsync(cancellationToken);
        _lastHeartbeat = _time.GetTimestamp();
        if (flush is not null)
        {
            _unconfirmed = null;
            Interlocked.Increment(ref _published);
        }
    }

    /// <summary>
    /// Reads the flushes of the others after the last one read, in order, and merges them into the client cells. All
    /// pages in one snapshot (repeatable read): a compaction run committing between two pages would otherwise fold rows
    /// of the later pages into rows of the earlier ones.
    /// </summary>
    private async Task ReadSpendAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        while (true)
        {
            var flushes = new List<SpendFlush>();
            var last = _lastSeq;
            var rows = 0;
            await using (var command = new NpgsqlCommand(
                "SELECT seq, flush_id, relay, body::text FROM ccrelay_spend WHERE seq > @last ORDER BY seq LIMIT 1000", connection, transaction))
            {
                command.Parameters.AddWithValue("last", last);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    var seq = reader.GetInt64(0);
                    last = seq;
                    rows++;
                    var relay = reader.GetString(2);
                    if (relay == RelayId)
                    {
                        continue;
                    }

                    var read = SpendFlushJson.read(reader.GetGuid(1), relay, seq, reader.GetString(3));
                    if (read.IsError)
                    {
                        SharedStateLog.Ignored(_logger, read.ErrorValue);
                        continue;
                    }

                    flushes.Add(read.ResultValue);
                }
            }

            foreach (var flush in flushes)
            {
                var (view, change) = SharedSpend.merge(flush, _view).ToValueTuple();
                _view = view;
                MergeIntoCells(change);
                Interlocked.Increment(ref _merged);
            }

            // read and merged: the next read starts after them (a failure before this line reads them again)
            _lastSeq = last;
            if (rows < 1000)
            {
                break;
            }
        }

        await transaction.CommitAsync(cancellationToken);
        _readOnce = true;
    }

    private void MergeIntoCells(SpendChange change)
    {
        if (change.Spent.IsEmpty && change.Reserved.IsEmpty)
        {
            return;
        }

        var clients = _state.Current.Config.Clients;
        foreach (var client in clients)
        {
            var spent = change.Spent.Where(e => e.Client == client.Name).ToList();
            var reserved = change.Reserved.Where(r => r.Client == client.Name).ToList();
            if (spent.Count > 0 || reserved.Count > 0)
            {
                _gate.Merge(client, spent, reserved);
            }
        }
    }

    /// <summary>Releases the reservations of relays whose heartbeat is older than <see cref="SharedHealth.staleAfter"/> (by the database's clock).</summary>
    private async Task ReleaseGoneAsync(CancellationToken cancellationToken)
    {
        if (_view.Levels.IsEmpty)
        {
            return;
        }

        var gone = new List<string>();
        await using (var connection = await _pool.OpenConnectionAsync(cancellationToken))
        await using (var command = new NpgsqlCommand("SELECT relay FROM ccrelay_relays WHERE seen_at < now() - @stale", connection))
        {
            command.Parameters.AddWithValue("stale", SharedHealth.staleAfter(_flushInterval));
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                gone.Add(reader.GetString(0));
            }
        }

        foreach (var relay in gone)
        {
            var (view, change) = SharedSpend.forget(relay, _view).ToValueTuple();
            if (!change.Reserved.IsEmpty)
            {
                SharedStateLog.RelayGone(_logger, relay);
            }

            _view = view;
            MergeIntoCells(change);
        }
    }

    /// <summary>
    /// Replicates the runtime client-key changes both ways (<see cref="SharedKeyChanges.missing"/>): this relay's own
    /// store keeps working while the database is away (a relay starts and refuses revoked keys without it), the shared
    /// table carries every relay's changes; a change written here is announced (NOTIFY ccrelay_client_keys), and one
    /// appended to the own store raises its <c>Changed</c>, which makes the registry apply it at once.
    /// </summary>
    private async Task SyncKeysAsync(CancellationToken cancellationToken)
    {
        if (_keyStore is null || Interlocked.Exchange(ref _keysChanged, 0) == 0)
        {
            return;
        }

        var local = await _keyStore.LoadAsync(cancellationToken);
        var shared = new List<ClientKeyChange>();
        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand(
            "SELECT at, kind, client, key_sha256, previous_sha256, grace_until, expires_at, like_client, actor FROM ccrelay_client_key_changes ORDER BY seq",
            connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                if (ClientKeyChangeKind.TryParse(reader.GetString(1))?.Value is not { } kind)
                {
                    continue; // written by a newer relay
                }

                shared.Add(ClientKeyChange.Create(
                    reader.GetFieldValue<DateTimeOffset>(0),
                    kind,
                    reader.GetString(2),
                    reader.GetString(3),
                    reader.GetString(4),
                    reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
                    reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
                    reader.IsDBNull(7) ? null : reader.GetString(7),
                    reader.GetString(8)));
            }
        }

        var (toShared, toLocal) = SharedKeyReplication.Missing(local, shared);
        if (toShared.Count > 0)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            foreach (var change in toShared)
            {
                await using var insert = new NpgsqlCommand(
                    """
                    INSERT INTO ccrelay_client_key_changes (at, kind, client, key_sha256, previous_sha256, grace_until, expires_at, like_client, actor)
                    VALUES (@at, @kind, @client, @key, @previous, @grace, @expires, @like, @actor) ON CONFLICT DO NOTHING
                    """,
                    connection,
                    transaction);
                insert.Parameters.AddWithValue("at", change.At);
                insert.Parameters.AddWithValue("kind", change.Kind.WireName);
                insert.Parameters.AddWithValue("client", change.Client);
                insert.Parameters.AddWithValue("key", change.KeySha256);
                insert.Parameters.AddWithValue("previous", change.PreviousSha256);
                insert.Parameters.AddWithValue("grace", change.GraceUntil is { } grace ? (object)grace.Value : DBNull.Value);
                insert.Parameters.AddWithValue("expires", change.ExpiresAt is { } expires ? (object)expires.Value : DBNull.Value);
                insert.Parameters.AddWithValue("like", change.Like is { } like ? (object)like.Value : DBNull.Value);
                insert.Parameters.AddWithValue("actor", change.Actor);
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }

            await using (var notify = new NpgsqlCommand("SELECT pg_notify('ccrelay_client_keys', @relay)", connection, transaction))
            {
                notify.Parameters.AddWithValue("relay", RelayId);
                await notify.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            Interlocked.Add(ref _published, toShared.Count);
        }

        if (toLocal.Count > 0)
        {
            // raises the store's Changed: the registry applies them (and this loop finds nothing left to copy)
            await _keyStore.AppendAsync([.. toLocal], cancellationToken);
        }
    }

    /// <summary>Reads every kind of shared state again (after a (re)connection) and applies it: what was missed while away.</summary>
    private async Task ResyncAsync(CancellationToken cancellationToken)
    {
        var read = new List<SharedEvent>();
        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand("SELECT provider, open_until FROM ccrelay_circuits WHERE open_until > now()", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                read.Add(SharedEvent.NewCircuitOpened(reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1)));
            }
        }

        await using (var command = new NpgsqlCommand("SELECT provider, disabled FROM ccrelay_providers", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                read.Add(SharedEvent.NewProviderSwitched(reader.GetString(0), reader.GetBoolean(1)));
            }
        }

        await using (var command = new NpgsqlCommand("SELECT provider, key_id, cooldown_until, rpm, itpm, otpm FROM ccrelay_keys", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                if (!reader.IsDBNull(2))
                {
                    read.Add(SharedEvent.NewKeyCooledDown(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2)));
                }

                if (!reader.IsDBNull(3))
                {
                    read.Add(SharedEvent.NewKeyLimitsLearned(
                        reader.GetString(0), reader.GetString(1), new KeyLimits(reader.GetInt32(3), reader.GetInt32(4), reader.GetInt32(5))));
                }
            }
        }

        await using (var command = new NpgsqlCommand("SELECT key_id FROM ccrelay_revoked_client_keys", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                read.Add(SharedEvent.NewClientKeyRevoked(reader.GetString(0)));
            }
        }

        foreach (var shared in read)
        {
            Apply(shared);
        }

        await RestorePinsAsync(connection, cancellationToken);
    }
}
