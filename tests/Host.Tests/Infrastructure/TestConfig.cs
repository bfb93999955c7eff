using CcRelay.Core;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>Builds Core config records from C# for tests.</summary>
public static class TestConfig
{
    public static ProviderConfig Provider(
        string name,
        Uri baseUrl,
        ProviderType? type = null,
        IEnumerable<string>? keys = null,
        IDictionary<string, string>? modelMapping = null,
        IEnumerable<string>? models = null,
        bool enabled = true,
        int? priority = null,
        CloudSettings? cloud = null)
    {
        var providerType = type ?? ProviderType.AnthropicCompatible;
        var defaults = Config.defaultProvider(name, providerType, baseUrl);
        return new ProviderConfig(
            name,
            providerType,
            enabled,
            baseUrl,
            defaults.AuthStyle,
            ListModule.OfSeq((keys ?? []).Select(k => new KeyConfig(k, 0, 0, 0, 0, 0, 1, null))),
            MapModule.OfSeq((modelMapping ?? new Dictionary<string, string>()).Select(kv => Tuple.Create(kv.Key, kv.Value))),
            models is null ? defaults.Models : ListModule.OfSeq(models),
            defaults.Pricing,
            priority ?? defaults.Priority,
            defaults.Weight,
            defaults.Family,
            defaults.KeyStrategy,
            cloud ?? CloudSettings.Direct);
    }

    public static RelayConfig Relay(
        IEnumerable<ProviderConfig> providers,
        string? apiKey = null,
        bool allowBearer = false,
        string? bearerSecret = null,
        long maxBodyBytes = 32L * 1024 * 1024,
        int firstByteTimeoutMs = 120_000,
        int timeoutMs = 600_000,
        RoutingConfig? routing = null,
        HealthConfig? health = null,
        IEnumerable<ClientConfig>? clients = null,
        LedgerConfig? ledger = null,
        PipelinesConfig? pipelines = null)
    {
        var d = Config.defaultServer;
        var auth = new AuthSettings(Opt(apiKey), allowBearer, Opt(bearerSecret));
        var server = new ServerConfig(
            new ListenAddress("127.0.0.1", 0),
            auth,
            timeoutMs,
            d.MaxConcurrent,
            maxBodyBytes,
            d.EnableHttp2,
            firstByteTimeoutMs,
            d.ShutdownTimeoutMs,
            d.StreamKeepAlive,
            d.StreamKeepAliveMs);
        return new RelayConfig(server, ListModule.OfSeq(providers), Config.defaultLogging, Config.defaultMetrics, Config.defaultOtel, routing ?? Config.defaultRouting, health ?? Config.defaultHealth, Config.defaultGrpc, Config.defaultEdge, ListModule.OfSeq(clients ?? []), ledger ?? NoLedger, pipelines ?? NoPipelines, Config.defaultState);
    }

    /// <summary>The ledger off: tests that do not ask for one never write a file.</summary>
    public static LedgerConfig NoLedger => new(false, FSharpOption<string>.None, Config.defaultLedger.FlushIntervalMs, Config.defaultLedger.QueueCapacity, TimeZoneInfo.Utc);

    /// <summary>A ledger at <paramref name="path"/>, flushed every <paramref name="flushIntervalMs"/> ms.</summary>
    public static LedgerConfig Ledger(string path, int flushIntervalMs = 50, TimeZoneInfo? timeZone = null) =>
        new(true, FSharpOption<string>.Some(path), flushIntervalMs, Config.defaultLedger.QueueCapacity, timeZone ?? TimeZoneInfo.Utc);

    /// <summary>The default routing section with the given failover limits (and debug headers on).</summary>
    public static RoutingConfig Routing(int maxAttempts = 5, int failoverTimeoutMs = 5_000, bool debug = true, int hedgeAfterMs = 0, StagesConfig? stages = null, RoutingStrategy? strategy = null)
    {
        var d = Config.defaultRouting;
        return new RoutingConfig(strategy ?? d.Strategy, maxAttempts, failoverTimeoutMs, hedgeAfterMs, debug, d.ModelRules, d.DefaultProvider, stages ?? d.Stages);
    }

    /// <summary><c>routing.stages</c>: each stage with its targets, written <c>provider</c> or <c>provider,model</c>.</summary>
    public static StagesConfig Stages(params (Stage Stage, string[] Targets)[] routes) =>
        new(
            ListModule.OfSeq(routes.Select(r => Tuple.Create(
                r.Stage,
                ListModule.OfSeq(r.Targets.Select(t => t.Split(',', 2) is [var p, var m]
                    ? new StageTarget(p, FSharpOption<string>.Some(m))
                    : new StageTarget(t, FSharpOption<string>.None)))))),
            Config.defaultStages.LongContextThreshold,
            true,
            true);

    /// <summary>The default health section with the given breaker settings (health-check probes off unless an interval is given).</summary>
    public static HealthConfig Health(int failureThreshold = 5, int windowMs = 10_000, int openDurationMs = 30_000, int halfOpenProbes = 1, int healthCheckIntervalMs = 0)
    {
        var d = Config.defaultHealth;
        return new HealthConfig(
            new HealthCheckConfig(healthCheckIntervalMs > 0, healthCheckIntervalMs > 0 ? healthCheckIntervalMs : d.HealthCheck.IntervalMs, d.HealthCheck.Probe),
            new CircuitBreakerConfig(failureThreshold, windowMs, openDurationMs, halfOpenProbes));
    }

    public static RelayConfig With(
        this RelayConfig config,
        LoggingConfig? logging = null,
        MetricsConfig? metrics = null,
        OtelConfig? otel = null,
        GrpcConfig? grpc = null,
        EdgeConfig? edge = null,
        PipelinesConfig? pipelines = null,
        StateConfig? state = null) =>
        new(config.Server, config.Providers, logging ?? config.Logging, metrics ?? config.Metrics, otel ?? config.Otel, config.Routing, config.Health, grpc ?? config.Grpc, edge ?? config.Edge, config.Clients, config.Ledger, pipelines ?? config.Pipelines, state ?? config.State);

    /// <summary>No pipelines, no plugins.</summary>
    public static PipelinesConfig NoPipelines { get; } = new(FSharpList<PipelineConfig>.Empty, FSharpList<PluginConfig>.Empty);

    public static LoggingConfig Logging(
        CcRelay.Core.LogLevel? level = null,
        LogFormat? format = null,
        string output = "stdout",
        bool debugAll = false,
        int maxBodyLogSize = 1000) =>
        new(
            level ?? CcRelay.Core.LogLevel.Info,
            format ?? LogFormat.Text,
            output,
            new DebugOptions(debugAll, debugAll, debugAll, debugAll, maxBodyLogSize));

    public static MetricsConfig Metrics(bool enabled = true, string path = "/metrics", ListenAddress? listen = null, int maxModelLabels = 100) =>
        new(enabled, path, listen is null ? FSharpOption<ListenAddress>.None : FSharpOption<ListenAddress>.Some(listen), maxModelLabels);

    public static OtelConfig Otel(bool enabled = false, Uri? endpoint = null, bool propagate = false) =>
        new(
            enabled,
            endpoint is null ? FSharpOption<Uri>.None : FSharpOption<Uri>.Some(endpoint),
            OtlpProtocol.HttpProtobuf,
            "cc-relay-test",
            propagate);

    /// <summary>A provider with these keys instead of its own (for limits: <c>new KeyConfig(secret, rpm, itpm, otpm, 0, 0, 1, null)</c>).</summary>
    public static ProviderConfig WithKeys(this ProviderConfig provider, params KeyConfig[] keys) =>
        new(
            provider.Name,
            provider.Type,
            provider.Enabled,
            provider.BaseUrl,
            provider.AuthStyle,
            ListModule.OfSeq(keys),
            provider.ModelMapping,
            provider.Models,
            provider.Pricing,
            provider.Priority,
            provider.Weight,
            provider.Family,
            provider.KeyStrategy,
            provider.Cloud);

    /// <summary>A provider with <c>pricing</c> rules (pattern → input/output price per million tokens).</summary>
    public static ProviderConfig WithPricing(this ProviderConfig provider, params (string Pattern, decimal Input, decimal Output)[] rules) =>
        new(
            provider.Name,
            provider.Type,
            provider.Enabled,
            provider.BaseUrl,
            provider.AuthStyle,
            provider.Keys,
            provider.ModelMapping,
            provider.Models,
            ListModule.OfSeq(rules.Select(r => new PriceRule(r.Pattern, new ModelPrice(r.Input, r.Output, r.Input, r.Input)))),
            provider.Priority,
            provider.Weight,
            provider.Family,
            provider.KeyStrategy,
            provider.Cloud);

    private static FSharpOption<string> Opt(string? value) =>
        value is null ? FSharpOption<string>.None : FSharpOption<string>.Some(value);
}
