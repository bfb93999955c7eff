using CcRelay.Host.Credentials;
using CcRelay.Host.Edge;
using CcRelay.Host.Endpoints;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using CcRelay.Host.Observability;
using CcRelay.Host.Plugins;
using CcRelay.Host.Reload;
using CcRelay.Host.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host;

/// <summary>Registers the relay in any ASP.NET Core application.</summary>
public static class CcRelayServiceCollectionExtensions
{
    /// <summary>
    /// Adds the relay's services, its metrics (<see cref="CcRelayMetricsServiceCollectionExtensions.AddCcRelayMetrics"/>)
    /// and, when <c>otel.enabled</c>, OTLP export of its spans and metrics. Pair with <see cref="CcRelayEndpointRouteBuilderExtensions.MapCcRelay"/>.
    /// </summary>
    public static IServiceCollection AddCcRelay(this IServiceCollection services, Action<CcRelayOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new CcRelayOptions();
        configure?.Invoke(options);

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(options);
        services.AddSingleton(new RelayState(options.Config));
        // one id per relay process, everywhere it is written (ledger rows, spend, heartbeat, pins, agreement)
        services.AddSingleton(Shared.RelayIdentity.New());
        services.AddCcRelayMetrics(options.Config);
        OtlpExport.Add(services, options.Config.Otel);
        services.AddSingleton(sp => new RuntimeCell(
            sp.GetRequiredService<RelayState>().Current,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<RuntimeCell>>()));
        services.AddSingleton(sp => new CloudCredentials(sp.GetRequiredService<TimeProvider>(), options.Environment));
        services.AddHostedService(sp => new HealthProber(
            sp.GetRequiredService<RuntimeCell>(),
            UpstreamClient.Create(options.Config.Edge.Security),
            sp.GetRequiredService<CloudCredentials>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<HealthProber>>()));
        services.AddSingleton(sp => new UpstreamForwarder(
            UpstreamClient.Create(options.Config.Edge.Security, sp.GetRequiredService<ILogger<UpstreamForwarder>>()),
            sp.GetRequiredService<CloudCredentials>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<RelayMetrics>(),
            sp.GetRequiredService<ILogger<UpstreamForwarder>>())
        {
            PingInterval = options.PingInterval,
        });
        services.AddSingleton(sp => new PluginHost(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<RelayMetrics>()));
        services.AddSingleton(sp => new FailoverForwarder(
            sp.GetRequiredService<UpstreamForwarder>(),
            sp.GetRequiredService<CloudCredentials>(),
            sp.GetRequiredService<RuntimeCell>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<FailoverForwarder>>(),
            sp.GetRequiredService<PluginHost>()));
        services.AddSingleton(sp =>
        {
            var state = sp.GetRequiredService<RelayState>();
            var reloader = new ConfigReloader(
                state,
                options,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<ConfigReloader>>(),
                sp.GetService<LoggingSwitch>(),
                sp.GetRequiredService<RuntimeCell>(),
                sp.GetService<RelayMetrics>());

            // an applied reload retires the pools of the plugins it removed or changed: their idle processes stop now
            var plugins = sp.GetRequiredService<PluginHost>();
            reloader.Reloaded += result =>
            {
                if (result.Outcome == ReloadOutcome.Applied)
                {
                    plugins.Reconcile(state.Current.Config.Pipelines.Plugins);
                }
            };
            return reloader;
        });
        services.AddHostedService(sp => sp.GetRequiredService<ConfigReloader>());
        services.AddHostedService(_ => new TokenizerWarmup(options.Config));
        services.AddSingleton(sp => new Clients.ClientMetrics(sp.GetRequiredService<RelayMetrics>()));
        services.AddSingleton<Ledger.IUsageLedger>(sp => OpenLedger(options, sp));
        // runtime client keys (cc-relay clients …): kept in the ledger's file unless a store is registered already
        services.TryAddSingleton<Clients.IClientKeyStore>(_ => new Clients.SqliteClientKeyStore(Ledger.LedgerFile.ResolvePath(options.Config.Ledger, options.Environment)));
        services.AddSingleton(sp => new Clients.ClientKeyRegistry(
            sp.GetRequiredService<RelayState>(),
            sp.GetRequiredService<Clients.IClientKeyStore>(),
            sp.GetRequiredService<AuditTrail>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("CcRelay.Host.Clients")));
        services.AddSingleton(sp =>
        {
            // the runtime changes are applied before the budgets are rebuilt: runtime clients' spend is rebuilt too
            var state = sp.GetRequiredService<RelayState>();
            _ = sp.GetRequiredService<Clients.ClientKeyRegistry>();
            return new Clients.ClientGate(
                state.Current.Config,
                // with state.postgres, budgets are rebuilt from the shared store's spend (every relay's), not from this relay's ledger
                options.Config.State.Postgres is null ? sp.GetRequiredService<Ledger.IUsageLedger>() : Ledger.NullLedger.Instance,
                sp.GetRequiredService<TimeProvider>(),
                state.Current.Clients);
        });
        if (options.Config.State.Postgres?.Value is { } postgres)
        {
            // several relays, one behaviour (docs/scale-out.md): started before the server takes requests
            services.AddSingleton(sp =>
            {
                var shared = new Shared.SharedStateService(
                    postgres,
                    TimeSpan.FromMilliseconds(options.Config.State.FlushIntervalMs),
                    sp.GetRequiredService<RelayState>(),
                    sp.GetRequiredService<RuntimeCell>(),
                    sp.GetRequiredService<Clients.ClientGate>(),
                    sp.GetRequiredService<TimeProvider>(),
                    sp.GetRequiredService<ILoggerFactory>().CreateLogger("CcRelay.Host.Shared"),
                    sp.GetService<Clients.IClientKeyStore>(),
                    sp.GetRequiredService<Shared.RelayIdentity>());
                Shared.SharedStateMetrics.Register(sp.GetRequiredService<RelayMetrics>().Meter, shared);
                return shared;
            });
            services.AddHostedService(sp => sp.GetRequiredService<Shared.SharedStateService>());
        }

        services.AddSingleton(sp =>
        {
            var state = sp.GetRequiredService<RelayState>();
            var clientMetrics = sp.GetRequiredService<Clients.ClientMetrics>();
            var accounting = new RequestAccounting(sp.GetRequiredService<RelayMetrics>(), sp.GetRequiredService<ILogger<MessagesEndpoint>>(), options.AccountingInterval)
            {
                Ledger = sp.GetRequiredService<Ledger.IUsageLedger>(),

                // client metrics only while clients are configured: no client label otherwise
                ClientMetrics = () => state.Current.Clients.Count == 0 ? null : clientMetrics,
            };

            // a scrape counts every request that has ended, however recently; once the server has stopped, the
            // requests it waited for are counted while the metric providers still listen (the container
            // disposes them, flushing OTLP, before it disposes the accounting)
            sp.GetService<PrometheusExposition>()?.OnScrape(accounting.Drain);
            sp.GetService<IHostApplicationLifetime>()?.ApplicationStopped.Register(accounting.Drain);
            return accounting;
        });
        // the hardened edge (docs/security.md): admission in front of the relayed routes, the audit log
        services.AddSingleton(sp => new AdmissionGate(
            sp.GetRequiredService<RelayState>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<RelayMetrics>(),
            sp.GetService<IClientConcurrency>(),
            sp.GetRequiredService<RequestAccounting>(),
            sp.GetRequiredService<ILogger<MessagesEndpoint>>()));
        services.AddSingleton(sp =>
        {
            var audit = new AuditTrail(sp.GetRequiredService<RelayState>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<AuditTrail>>());
            sp.GetRequiredService<ConfigReloader>().Reloaded += audit.ConfigReloaded;
            return audit;
        });
        services.AddSingleton<MessagesEndpoint>();
        services.AddSingleton<ModelsEndpoint>();
        services.AddSingleton<IngressEndpoint>();
        return services;
    }

    /// <summary>
    /// The usage ledger <c>ledger</c> asks for: the SQLite file, the shared store's table when <c>state.postgres</c> is
    /// set, or none when it is off. A store that cannot be opened does not stop the relay: the ledger reports it and
    /// tries again at each flush.
    /// </summary>
    private static Ledger.IUsageLedger OpenLedger(CcRelayOptions options, IServiceProvider services)
    {
        var config = options.Config.Ledger;
        if (!config.Enabled)
        {
            return Ledger.NullLedger.Instance;
        }

        // with state.postgres the ledger is the shared store's table: every relay's rows in one place (docs/scale-out.md)
        Ledger.IBatchedLedger ledger = options.Config.State.Postgres?.Value is { } postgres
            ? new Ledger.PostgresLedger(
                postgres,
                services.GetRequiredService<Shared.RelayIdentity>().Id,
                TimeSpan.FromMilliseconds(config.FlushIntervalMs),
                config.QueueCapacity,
                services.GetRequiredService<TimeProvider>(),
                services.GetRequiredService<ILoggerFactory>().CreateLogger("CcRelay.Host.Ledger"))
            : new Ledger.SqliteLedger(
                Ledger.LedgerFile.ResolvePath(config, options.Environment),
                TimeSpan.FromMilliseconds(config.FlushIntervalMs),
                config.QueueCapacity,
                services.GetRequiredService<TimeProvider>(),
                services.GetRequiredService<ILoggerFactory>().CreateLogger("CcRelay.Host.Ledger"));
        services.GetRequiredService<Clients.ClientMetrics>().Watch(ledger);
        return ledger;
    }
}
