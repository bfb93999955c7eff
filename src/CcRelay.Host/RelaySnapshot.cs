using System.Collections.Frozen;
using CcRelay.Core;

namespace CcRelay.Host;

/// <summary>
/// One immutable view of the relay's configuration and everything derived from it. A request reads
/// one snapshot at its start and finishes on it, whatever reloads happen meanwhile.
/// </summary>
public sealed class RelaySnapshot
{
    private readonly FrozenDictionary<string, string> _keyIds;
    private RecentKeyId? _recent;

    /// <summary>
    /// Derives a snapshot from a validated configuration; <paramref name="clients"/>: the effective clients (the
    /// config's with the runtime client-key changes laid over them), the config's when null.
    /// </summary>
    public RelaySnapshot(RelayConfig config, IReadOnlyList<ClientConfig>? clients = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        Clients = clients ?? config.Clients;
        ClientKeyIndex = new ClientKeyIndex(Clients);
        Auth = Core.Auth.compile(config.Server.Auth);
        Candidates = Upstream.candidates(config);
        Catalogue = new ModelCatalogue(config);

        // compiled once per snapshot, never per request; the runtime's policy shares the price tables
        Prices = ProviderPrices.Compile(config.Providers);
        var keyIds = new Dictionary<string, string>(StringComparer.Ordinal);
        var secrets = new List<string>();
        foreach (var provider in config.Providers)
        {
            foreach (var key in provider.Keys.Where(k => k.Key.Length > 0))
            {
                keyIds.TryAdd(key.Key, KeyId.ofSecret(key.Key));
                secrets.AddRange(CcRelay.Core.Config.keySecrets(key));
            }

            secrets.AddRange(CcRelay.Core.Config.cloudSecrets(provider.Cloud).Where(s => s.Length > 0));
        }

        StatusToken = Core.StatusToken.compile(config.Edge.Security.StatusToken);

        // what a plugin is given in its env may be a secret of its own
        secrets.AddRange(config.Pipelines.Plugins.SelectMany(p => p.Env).Select(e => e.Item2).Where(v => v.Length > 0));

        secrets.AddRange(new[] { config.Server.Auth.ApiKey, config.Server.Auth.BearerSecret, config.Grpc.AuthToken, config.Edge.Security.StatusToken }
            .Where(s => s is not null && s.Value.Length > 0)
            .Select(s => s!.Value));

        _keyIds = keyIds.ToFrozenDictionary(StringComparer.Ordinal);
        Secrets = [.. secrets.Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The validated configuration.</summary>
    public RelayConfig Config { get; }

    /// <summary>
    /// The effective client keys: <c>clients[]</c> with the runtime changes (added, revoked, rotated) laid over them.
    /// Read these, not <c>Config.Clients</c>, to decide who a caller is.
    /// </summary>
    public IReadOnlyList<ClientConfig> Clients { get; }

    /// <summary>
    /// <see cref="Clients"/> with the keys already admitted on this snapshot, so a request presenting one is not
    /// hashed again (<see cref="ClientKeys.authenticateWith"/>); a new snapshot starts with none.
    /// </summary>
    public ClientKeyIndex ClientKeyIndex { get; }

    /// <summary>The compiled client-auth policy.</summary>
    public AuthPolicy Auth { get; }

    /// <summary>The compiled <c>security.status_token</c> (<c>/metrics</c>, the detailed <c>/health</c>).</summary>
    public StatusTokenPolicy StatusToken { get; }

    /// <summary>The providers a request may go to, in order.</summary>
    public IReadOnlyList<ProviderConfig> Candidates { get; }

    /// <summary>The <c>/v1/models</c> catalogue.</summary>
    public ModelCatalogue Catalogue { get; }

    /// <summary>Every secret the configuration holds (provider keys, client-auth secrets), for <see cref="Redact"/>.</summary>
    public IReadOnlyList<string> Secrets { get; }

    /// <summary>
    /// Every provider's price table, compiled once for this configuration and shared with the routing policy
    /// (<see cref="Routing.RuntimeCell.Reconcile"/>).
    /// </summary>
    public ProviderPrices Prices { get; }

    /// <summary>A provider's price table (its <c>pricing</c> rules, then the built-in prices).</summary>
    public PriceTable PricesFor(string provider) => Prices.TableOf(provider);

    /// <summary>
    /// The <see cref="KeyId"/> of a secret: from the snapshot's table when it is a configured key, else computed,
    /// remembering the last one (a client sends the same credential request after request).
    /// </summary>
    public string KeyIdOf(string secret)
    {
        if (_keyIds.TryGetValue(secret, out var id))
        {
            return id;
        }

        var recent = Volatile.Read(ref _recent);
        if (recent is not null && string.Equals(recent.Secret, secret, StringComparison.Ordinal))
        {
            return recent.Id;
        }

        id = KeyId.ofSecret(secret);
        Volatile.Write(ref _recent, new RecentKeyId(secret, id));
        return id;
    }

    /// <summary>A class, not a record: a record's ToString would print the secret.</summary>
    private sealed class RecentKeyId(string secret, string id)
    {
        public string Secret { get; } = secret;

        public string Id { get; } = id;
    }
}
