using CcRelay.Core;
using CcRelay.Host.Reload;
using CcRelay.Host.Routing;
using CcRelay.Management.V1;
using Grpc.Core;
using Status = CcRelay.Management.V1.Status;

namespace CcRelay.Host.Management;

/// <summary>
/// The <c>ccrelay.v1.RelayManagement</c> service: reads the live runtime and snapshot, asks Core for the views
/// and decisions (<see cref="Core.Management"/>, <see cref="RequestStats"/>), applies transitions through the
/// <see cref="RuntimeCell"/>. Never answers with a secret: keys are key ids, the config is rendered redacted.
/// </summary>
internal sealed class RelayManagementService(
    RelayState state,
    RuntimeCell runtime,
    ConfigReloader reloader,
    RequestFeed feed,
    CcRelayOptions options,
    TimeProvider timeProvider,
    Ledger.IUsageLedger ledger,
    Clients.ClientKeyRegistry clientKeys,
    Plugins.PluginHost? plugins = null,
    Shared.SharedStateService? shared = null) : RelayManagement.RelayManagementBase
{
    private readonly DateTimeOffset _started = timeProvider.GetUtcNow() - runtime.Now;

    public override Task<Status> GetStatus(GetStatusRequest request, ServerCallContext context)
    {
        var now = runtime.Now;
        var current = runtime.Current;
        var providers = Core.Management.providers(current, now);
        return Task.FromResult(new Status
        {
            Version = RelayInfo.Version,
            UptimeMs = (long)now.TotalMilliseconds,
            StartedUnixMs = _started.ToUnixTimeMilliseconds(),
            ConfigGeneration = current.Policy.Version,
            ConfigPath = options.ConfigPath is { } path ? Path.GetFullPath(path) : "",
            ConfigSource = options.ConfigSource ?? "built-in default",
            RoutingStrategy = current.Policy.Config.Routing.Strategy.WireName,
            ProvidersTotal = providers.Length,
            ProvidersUp = providers.Count(p => p.Up),
            Totals = feed.Totals(),
            SharedState = ManagementViews.SharedState(shared?.Link ?? SharedLink.Off, timeProvider.GetUtcNow()),
        });
    }

    public override Task<ListProvidersResponse> ListProviders(ListProvidersRequest request, ServerCallContext context)
    {
        var response = new ListProvidersResponse();
        response.Providers.AddRange(Core.Management.providers(runtime.Current, runtime.Now).Select(ManagementViews.Provider));
        return Task.FromResult(response);
    }

    public override Task<SetProviderEnabledResponse> SetProviderEnabled(SetProviderEnabledRequest request, ServerCallContext context)
    {
        var change = runtime.Transition(current => Core.Management.setEnabled(current, request.Name, request.Enabled));
        if (change.IsUnknownProvider)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.NotFound, $"no provider is named \"{request.Name}\""));
        }

        if (change.IsDisabledInConfig)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, $"provider \"{request.Name}\" is disabled in the config (enabled: false, or no usable key); change the config and reload"));
        }

        var view = Core.Management.providers(runtime.Current, runtime.Now).First(p => p.Name == request.Name);
        return Task.FromResult(new SetProviderEnabledResponse
        {
            Changed = ((OperatorChange.Done)change).Changed,
            Provider = ManagementViews.Provider(view),
        });
    }

    public override Task<ListKeysResponse> ListKeys(ListKeysRequest request, ServerCallContext context)
    {
        var current = runtime.Current;
        if (request.Provider.Length > 0 && !current.Policy.Config.Providers.Any(p => p.Name == request.Provider))
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.NotFound, $"no provider is named \"{request.Provider}\""));
        }

        var response = new ListKeysResponse();
        response.Keys.AddRange(Core.Management.keys(current, runtime.Now, request.Provider).Select(ManagementViews.Key));
        return Task.FromResult(response);
    }

    public override Task<AddKeyResponse> AddKey(AddKeyRequest request, ServerCallContext context)
    {
        var key = new NewKey(request.Key, request.RpmLimit, request.ItpmLimit, request.OtpmLimit, request.Priority, request.Weight);
        var result = reloader.EditKeys("grpc", request.Provider, added: true, config => KeyEdit.add(config, request.Provider, key));
        var (keyId, added) = result switch
        {
            KeyEditResult.Changed changed => (changed.KeyId, true),
            KeyEditResult.AlreadyThere there => (there.KeyId, false),
            _ => throw KeyEditFailure(result, request.Provider, ""),
        };
        var current = runtime.Current;
        var response = new AddKeyResponse { Added = added, KeyId = keyId, ConfigGeneration = current.Policy.Version };
        if (Core.Management.keys(current, runtime.Now, request.Provider).FirstOrDefault(k => k.KeyId == keyId) is { } view)
        {
            response.State = ManagementViews.Key(view);
        }

        return Task.FromResult(response);
    }

    public override Task<RemoveKeyResponse> RemoveKey(RemoveKeyRequest request, ServerCallContext context)
    {
        var result = reloader.EditKeys("grpc", request.Provider, added: false, config => KeyEdit.remove(config, request.Provider, request.KeyId));
        if (result is not KeyEditResult.Changed changed)
        {
            throw KeyEditFailure(result, request.Provider, request.KeyId);
        }

        return Task.FromResult(new RemoveKeyResponse { KeyId = changed.KeyId, ConfigGeneration = runtime.Current.Policy.Version });
    }

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var response = new ListModelsResponse();
        response.Providers.AddRange(Core.ProviderModels.OfConfig(state.Current.Config).Select(ManagementViews.Models));
        return Task.FromResult(response);
    }

    public override Task<ListPluginsResponse> ListPlugins(ListPluginsRequest request, ServerCallContext context)
    {
        var configured = state.Current.Config.Pipelines.Plugins;
        var statuses = plugins is not null
            ? plugins.Statuses(configured)
            : [.. configured.Select(c => PluginStatuses.idle(c, false, 0))];
        var secrets = state.Current.Secrets;
        var response = new ListPluginsResponse();
        response.Plugins.AddRange(statuses.Select(s => ManagementViews.Plugin(secrets, s)));
        return Task.FromResult(response);
    }

    /// <summary>A refused key edit as a status; never quotes the secret.</summary>
    private static RpcException KeyEditFailure(KeyEditResult result, string provider, string keyId) => result switch
    {
        KeyEditResult.Invalid invalid => new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, invalid.Message)),
        _ when result.IsUnknownProvider => new RpcException(new Grpc.Core.Status(StatusCode.NotFound, $"no provider is named \"{provider}\"")),
        _ when result.IsNoSuchKey => new RpcException(new Grpc.Core.Status(StatusCode.NotFound, $"provider \"{provider}\" has no key {keyId}")),
        _ => new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, $"provider \"{provider}\" is disabled in the config (enabled: false, or no usable key); change the config and reload")),
    };

    public override Task<ReloadConfigResponse> ReloadConfig(ReloadConfigRequest request, ServerCallContext context)
    {
        if (options.ConfigPath is null)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, "the relay runs the built-in default config (no config file), so there is nothing to reload"));
        }

        ReloadResult result;
        try
        {
            result = reloader.Reload("grpc");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, Redact.scrub(state.Current.Secrets, e.Message)));
        }

        // issues are shown as the reloader logs them: the running config's secrets (and the new one's) scrubbed
        var secrets = state.Current.Secrets;
        var response = new ReloadConfigResponse
        {
            Outcome = result.Outcome switch
            {
                ReloadOutcome.Applied => "applied",
                ReloadOutcome.Unchanged => "unchanged",
                ReloadOutcome.RestartRequired => "restart_required",
                _ => "rejected",
            },
            ConfigGeneration = runtime.Current.Policy.Version,
        };
        response.Changes.AddRange(result.Changes.Select(c => Redact.scrub(secrets, ConfigDiff.describe([c]))));
        response.Errors.AddRange(result.Errors.Select(e => ManagementViews.Issue(secrets, e)));
        response.Warnings.AddRange(result.Warnings.Select(w => ManagementViews.Issue(secrets, w)));
        return Task.FromResult(response);
    }

    public override Task<GetConfigResponse> GetConfig(GetConfigRequest request, ServerCallContext context) =>
        Task.FromResult(new GetConfigResponse
        {
            Yaml = ConfigRender.toYaml(state.Current.Config),
            ConfigGeneration = runtime.Current.Policy.Version,
        });

    public override async Task WatchRequests(WatchRequestsRequest request, IServerStreamWriter<CompletedRequest> responseStream, ServerCallContext context)
    {
        using var subscription = feed.Subscribe(request.Provider);
        var cancel = context.CancellationToken;
        try
        {
            // headers now, so a client knows it is subscribed before the first request completes
            await context.WriteResponseHeadersAsync([]);
            var reported = 0L;
            while (await subscription.Reader.WaitToReadAsync(cancel))
            {
                while (subscription.Reader.TryRead(out var message))
                {
                    // what this reader lost (its buffer was full) is said in the stream, on the next message it gets
                    // (the message is shared by every subscriber: a copy carries the count)
                    var dropped = subscription.Dropped;
                    if (dropped != reported)
                    {
                        message = message.Clone();
                        message.DroppedBefore = dropped - reported;
                        reported = dropped;
                    }

                    await responseStream.WriteAsync(message, cancel);
                }
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // the client ended the stream
        }
    }

    public override async Task WatchStats(WatchStatsRequest request, IServerStreamWriter<Stats> responseStream, ServerCallContext context)
    {
        var interval = TimeSpan.FromMilliseconds(request.IntervalMs == 0 ? 1000 : Math.Max(100, request.IntervalMs));
        var window = request.WindowMs == 0 ? RequestStats.defaultWindow : TimeSpan.FromMilliseconds(request.WindowMs);
        if (window < TimeSpan.FromSeconds(1) || window > RequestFeed.MaxWindow)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, $"window_ms must be 1000 to {(long)RequestFeed.MaxWindow.TotalMilliseconds}, got {request.WindowMs}"));
        }

        var cancel = context.CancellationToken;
        using var timer = new PeriodicTimer(interval, timeProvider);
        try
        {
            do
            {
                await responseStream.WriteAsync(StatsNow(window), cancel);
            }
            while (await timer.WaitForNextTickAsync(cancel));
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // the client ended the stream
        }
    }

    private Stats StatsNow(TimeSpan window)
    {
        var now = runtime.Now;
        var current = runtime.Current;
        var windows = RequestStats.summarize(now, window, now, feed.Samples(now)).ToDictionary(w => w.Provider, StringComparer.Ordinal);
        var stats = new Stats
        {
            UnixMs = timeProvider.GetUtcNow().ToUnixTimeMilliseconds(),
            UptimeMs = (long)now.TotalMilliseconds,
            WindowMs = (long)window.TotalMilliseconds,
            ConfigGeneration = current.Policy.Version,
            RoutingStrategy = current.Policy.Config.Routing.Strategy.WireName,
            Totals = feed.Totals(),
            Dropped = feed.SamplesDropped,
        };
        stats.Providers.AddRange(Core.Management.providers(current, now)
            .Select(view => ManagementViews.Stats(view, windows.GetValueOrDefault(view.Name))));
        return stats;
    }

    public override async Task<GetUsageResponse> GetUsage(GetUsageRequest request, ServerCallContext context)
    {
        var by = request.By.Length == 0 ? "client" : request.By;
        if (!Enum.TryParse<Ledger.UsageGrouping>(by, ignoreCase: true, out var grouping) || !by.All(char.IsAsciiLetterLower))
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, "by: expected client, provider, model, key or day"));
        }

        var zone = state.Current.Config.Ledger.TimeZone;
        var since = BudgetPeriods.parseSince(zone, timeProvider.GetUtcNow(), request.Since.Length == 0 ? "7d" : request.Since);
        if (since.IsError)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, since.ErrorValue));
        }

        await ledger.FlushAsync(context.CancellationToken);
        var status = ledger.Status;
        var response = new GetUsageResponse
        {
            By = by,
            SinceUnixMs = since.ResultValue.ToUnixTimeMilliseconds(),
            LedgerEnabled = status.Enabled,
            LedgerHealthy = status.Healthy,
        };
        if (!status.Enabled)
        {
            return response;
        }

        IReadOnlyList<Ledger.UsageGroup> groups;
        try
        {
            groups = ledger.Query(new Ledger.UsageQuery(grouping, since.ResultValue, zone));
        }
        catch (Exception e) when (e is FileNotFoundException or Microsoft.Data.Sqlite.SqliteException or IOException or UnauthorizedAccessException or Npgsql.NpgsqlException or TimeoutException)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, "the usage ledger cannot be read: " + e.Message));
        }

        response.Groups.AddRange(groups.Select(g => new UsageGroup
        {
            Key = g.Key,
            Requests = g.Requests,
            Errors = g.Errors,
            InputTokens = g.InputTokens,
            OutputTokens = g.OutputTokens,
            CacheReadTokens = g.CacheReadTokens,
            CacheWriteTokens = g.CacheWriteTokens,
            CostUsd = (double)g.CostUsd,
            Unpriced = g.Unpriced,
        }));
        return response;
    }

    public override Task<ListClientsResponse> ListClients(ListClientsRequest request, ServerCallContext context)
    {
        var response = new ListClientsResponse();
        response.Clients.AddRange(clientKeys.List().Select(ManagementViews.Client));
        return Task.FromResult(response);
    }

    public override async Task<AddClientResponse> AddClient(AddClientRequest request, ServerCallContext context)
    {
        DateTimeOffset? expires = request.ExpiresUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(request.ExpiresUnixMs) : null;
        var result = await clientKeys.AddAsync(Actor(request.Actor), Source(context), request.Name, request.KeySha256, expires, request.Like, context.CancellationToken);
        ThrowIfRefused(result);
        return new AddClientResponse { Client = ClientInfo(request.Name, "runtime") };
    }

    public override async Task<RevokeClientResponse> RevokeClient(RevokeClientRequest request, ServerCallContext context)
    {
        var result = await clientKeys.RevokeAsync(Actor(request.Actor), Source(context), request.Name, context.CancellationToken);
        ThrowIfRefused(result);
        var response = new RevokeClientResponse { Client = ClientInfo(request.Name, null) };
        response.RevokedKeyIds.AddRange(result.Changes.Select(c => ClientKeyChanges.keyIdOfHex(c.KeySha256)));
        return response;
    }

    public override async Task<RotateClientResponse> RotateClient(RotateClientRequest request, ServerCallContext context)
    {
        if (request.GraceMs < 0)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, "grace_ms: from 0 (the old key stops at once) to 30 days"));
        }

        var grace = TimeSpan.FromMilliseconds(Math.Min(request.GraceMs, (long)TimeSpan.FromDays(365).TotalMilliseconds));
        var result = await clientKeys.RotateAsync(Actor(request.Actor), Source(context), request.Name, request.KeySha256, grace, context.CancellationToken);
        ThrowIfRefused(result);
        var change = result.Changes[0];
        return new RotateClientResponse
        {
            Client = ClientInfo(request.Name, null),
            PreviousKeyId = ClientKeyChanges.keyIdOfHex(change.PreviousSha256),
            GraceUntilUnixMs = change.GraceUntil?.Value.ToUnixTimeMilliseconds() ?? 0,
        };
    }

    /// <summary>The client as ListClients shows it now (the active entry of its name; <paramref name="source"/> when given).</summary>
    private ClientKeyInfo ClientInfo(string name, string? source) =>
        clientKeys.List().Where(v => v.Name == name && (source is null || v.Source == source)).Select(ManagementViews.Client).LastOrDefault() ?? new ClientKeyInfo { Name = name };

    /// <summary>Who made a change, for the audit log: what the caller says it is (the CLI: <c>cli</c>), with the management token's id.</summary>
    private string Actor(string said)
    {
        var who = said is { Length: > 0 and <= 32 } && said.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@') ? said : "api";
        return state.Current.Config.Grpc.AuthToken?.Value is { Length: > 0 } token ? $"{who}:token-{KeyId.ofSecret(token)}" : who;
    }

    private static string Source(ServerCallContext context) =>
        context.GetHttpContext().Connection.RemoteIpAddress?.ToString() ?? "-";

    /// <summary>A refused change as a status: the Core decision's message names no secret.</summary>
    private static void ThrowIfRefused(ClientKeyDecision result)
    {
        if (!result.IsOk)
        {
            var error = result.Error;
            var code = error.IsNotFound ? StatusCode.NotFound : error.IsConflict ? StatusCode.AlreadyExists : StatusCode.InvalidArgument;
            throw new RpcException(new Grpc.Core.Status(code, error.Message));
        }
    }
}
