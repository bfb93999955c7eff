using CcRelay.Core;
using CcRelay.Host.Edge;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Clients;

/// <summary>
/// Runtime add, revoke and rotate of client keys: Core decides (<see cref="ClientKeyChanges.add"/>,
/// <see cref="ClientKeyChanges.revoke"/>, <see cref="ClientKeyChanges.rotate"/>), the store keeps the change
/// (<see cref="IClientKeyStore"/>), the relay's snapshot gets the new effective clients at once
/// (<see cref="RelayState.SetClientKeyChanges"/>), and the audit log records who did what (key ids only).
/// When the store says its log changed (another relay's change), the log is read again and applied.
/// One change at a time: the decisions read the log they extend.
/// </summary>
public sealed class ClientKeyRegistry : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly RelayState _state;
    private readonly IClientKeyStore _store;
    private readonly AuditTrail? _audit;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    /// <summary>
    /// Reads the store and applies its changes before it returns: a relay does not serve with keys it has revoked,
    /// so a store that cannot be read fails the start.
    /// </summary>
    public ClientKeyRegistry(RelayState state, IClientKeyStore store, AuditTrail? audit, TimeProvider timeProvider, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(store);
        _state = state;
        _store = store;
        _audit = audit;
        _timeProvider = timeProvider;
        _logger = logger;
        IReadOnlyList<ClientKeyChange> changes;
        try
        {
            changes = store.LoadAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException($"the client key store cannot be read ({e.Message}); the relay does not start without its revocations", e);
        }

        if (changes.Count > 0)
        {
            state.SetClientKeyChanges(changes);
            ClientKeyLog.Loaded(logger, changes.Count);
        }

        store.Changed += OnStoreChanged;
    }

    /// <summary>Every client and the state of its keys now.</summary>
    public IReadOnlyList<ClientKeyView> List() =>
        RuntimeClientKeys.View(_state.Current.Config.Clients, _state.ClientKeyChanges, _timeProvider.GetUtcNow());

    /// <summary>Adds a runtime client with the key whose SHA-256 is <paramref name="sha256"/>.</summary>
    public Task<ClientKeyDecision> AddAsync(string actor, string source, string name, string sha256, DateTimeOffset? expires, string? like, CancellationToken cancellationToken = default) =>
        ChangeAsync(actor, source, (config, changes, now) => RuntimeClientKeys.Add(config.Clients, changes, now, actor, name, sha256, expires, like), cancellationToken);

    /// <summary>Revokes every working key of client <paramref name="name"/>.</summary>
    public Task<ClientKeyDecision> RevokeAsync(string actor, string source, string name, CancellationToken cancellationToken = default) =>
        ChangeAsync(actor, source, (config, changes, now) => RuntimeClientKeys.Revoke(config.Clients, changes, now, actor, name), cancellationToken);

    /// <summary>Gives client <paramref name="name"/> the key whose SHA-256 is <paramref name="sha256"/>; the old one works on for <paramref name="grace"/>.</summary>
    public Task<ClientKeyDecision> RotateAsync(string actor, string source, string name, string sha256, TimeSpan grace, CancellationToken cancellationToken = default) =>
        ChangeAsync(actor, source, (config, changes, now) => RuntimeClientKeys.Rotate(config.Clients, changes, now, actor, name, sha256, grace), cancellationToken);

    /// <summary>Reads the store's log again and applies it (another relay's change, or a test).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var changes = await _store.LoadAsync(cancellationToken);
            _state.SetClientKeyChanges(changes);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<ClientKeyDecision> ChangeAsync(
        string actor,
        string source,
        Func<RelayConfig, IReadOnlyList<ClientKeyChange>, DateTimeOffset, ClientKeyDecision> decide,
        CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var before = _state.ClientKeyChanges;
            var decision = decide(_state.Current.Config, before, _timeProvider.GetUtcNow());
            if (!decision.IsOk)
            {
                return decision;
            }

            // stored first: a change the store did not keep is not applied (the caller gets the store's error)
            var made = decision.Changes;
            await _store.AppendAsync([.. made], cancellationToken);
            _state.SetClientKeyChanges([.. before, .. made]);
            foreach (var change in made)
            {
                var keyId = ClientKeyChanges.keyIdOfHex(change.KeySha256);
                ClientKeyLog.Changed(_logger, change.Kind.WireName, change.Client, keyId, actor);
                _audit?.ClientKeyChanged(actor, source, change.Client, keyId, change.Kind.WireName, Details(change));
            }

            return decision;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>What the audit line says beside the key id: the key replaced and its grace, the expiry, the template.</summary>
    private static IEnumerable<(string Key, string Value)> Details(ClientKeyChange change)
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        if (change.PreviousSha256.Length > 0)
        {
            yield return ("previous_key_id", ClientKeyChanges.keyIdOfHex(change.PreviousSha256));
        }

        if (change.GraceUntil?.Value is { } until)
        {
            yield return ("grace_until", until.ToString("O", c));
        }

        if (change.ExpiresAt?.Value is { } expires)
        {
            yield return ("expires", expires.ToString("O", c));
        }

        if (change.Like?.Value is { } like)
        {
            yield return ("like", like);
        }
    }

    private void OnStoreChanged(object? sender, EventArgs e) =>
        _ = Task.Run(async () =>
        {
            try
            {
                await RefreshAsync();
            }
            catch (ObjectDisposedException)
            {
                // the relay stopped meanwhile
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                ClientKeyLog.RefreshFailed(_logger, ex.Message);
            }
        });

    /// <inheritdoc/>
    public void Dispose()
    {
        _store.Changed -= OnStoreChanged;
        _gate.Dispose();
    }
}
